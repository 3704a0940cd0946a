/**
 * A JSR user's first session, end to end (make test-e2e). The file set that
 * `deno publish --dry-run` lists is served from one loopback server (standing
 * in for jsr.io), dist/ from another (standing in for the GitHub release,
 * reached through HAKOZUNA_DOWNLOAD_URL). Each user process runs from an
 * empty directory with a fresh DENO_DIR, no HAKOZUNA_LIB and no checkout on
 * its path. The served copy gets checksums of this build, as `make release`
 * would write them (the committed ones may be of an older build); a second
 * copy keeps the committed ones, which must be refused unless they match.
 * The commands and their output are written to build/e2e/session.txt.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { SUPPORTED } from "../../ffi/platform.ts";
import { VERSION } from "../../ffi/version.ts";
import {
  expectExit,
  listing,
  type Output,
  ROOT,
  run,
} from "../deno/helpers.ts";

const DIST = join(ROOT, "dist");
const ARTIFACT = `libhakozuna-linux-${
  Deno.build.arch === "aarch64" ? "aarch64" : "x86_64"
}.so`;
const sha256 = (bytes: Uint8Array) =>
  createHash("sha256").update(bytes).digest("hex");

/** The files `deno publish --dry-run` would upload, relative to ROOT. */
async function publishedFiles(): Promise<string[]> {
  const output = expectExit(
    await run(Deno.execPath(), ["publish", "--dry-run", "--allow-dirty"], {
      cwd: ROOT,
      env: { NO_COLOR: "1" },
    }),
    0,
  );
  const files = [...(output.stdout + output.stderr).matchAll(
    /^\s+file:\/\/(\/\S+) \(/gm,
  )].map(([, path]) => path.slice(ROOT.length));
  assert.ok(
    files.includes("mod.ts") && files.includes("cli.ts"),
    output.stderr,
  );
  return files;
}

/** A loopback server of `dir`'s files, stopped when disposed. */
function serveDirectory(dir: string) {
  const requests: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request) => {
      const path = decodeURIComponent(new URL(request.url).pathname);
      requests.push(path);
      try {
        const body = await Deno.readFile(join(dir, path));
        const type = path.endsWith(".ts")
          ? "application/typescript"
          : path.endsWith(".json")
          ? "application/json"
          : "application/octet-stream";
        return new Response(body, { headers: { "content-type": type } });
      } catch {
        return new Response("not found", { status: 404 });
      }
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/`,
    host: `127.0.0.1:${server.addr.port}`,
    requests,
    stop: () => server.shutdown(),
  };
}

/** The session transcript: each command with its environment and output. */
const transcript: string[] = [];

/** Runs a user command: from `home`, with only the environment given. */
async function user(
  home: string,
  env: Record<string, string>,
  args: string[],
): Promise<Output> {
  const shown = Object.entries(env)
    .filter(([name]) => !["PATH", "HOME", "NO_COLOR"].includes(name))
    .map(([name, value]) => `${name}=${value}`);
  const quoted = args.map((arg) => /[\s;$]/.test(arg) ? `'${arg}'` : arg);
  transcript.push(`$ ${[...shown, "deno", ...quoted].join(" ")}`);
  const all = { PATH: "/usr/bin:/bin", HOME: home, NO_COLOR: "1", ...env };
  const output = await run(Deno.execPath(), args, {
    cwd: home,
    env: all,
    unset: Object.keys(Deno.env.toObject()).filter((name) => !(name in all)),
  });
  for (
    const [name, text] of [["", output.stdout], ["stderr: ", output.stderr]]
  ) {
    for (
      const line of text.split("\n").filter((l) => l && !/^Download /.test(l))
    ) {
      transcript.push(`  ${name}${line}`);
    }
  }
  transcript.push(`  (exit ${output.code})`);
  return output;
}

/** A user's script: import the package over http, open, allocate, free. */
const SCRIPT = (pkg: string, how: "openAsync" | "open") => `
import { ${how} } from "${pkg}mod.ts";
using hz = ${how === "openAsync" ? "await openAsync()" : "open()"};
const block = hz.alloc(1 << 16);
block.bytes.fill(0x5a);
const ok = block.bytes.every((byte) => byte === 0x5a);
block.free();
const p = hz.malloc(100);
const owned = hz.owns(p);
hz.free(p);
console.log(JSON.stringify({ path: hz.path, version: hz.version, ok, owned }));
`;

Deno.test("a JSR user: openAsync downloads, open uses the cache, a tampered artifact is refused", async () => {
  const tmp = Deno.makeTempDirSync({ prefix: "hakozuna-e2e-" });
  try {
    // The published file set, twice: with checksums of this build (what
    // `make release` writes) and with the committed ones.
    const files = await publishedFiles();
    const served = join(tmp, "served");
    for (const copy of ["pkg", "committed"]) {
      for (const file of files) {
        const to = join(served, copy, file);
        Deno.mkdirSync(dirname(to), { recursive: true });
        Deno.copyFileSync(join(ROOT, file), to);
      }
    }
    const hashes = Object.fromEntries(
      SUPPORTED.map((platform) => {
        const name = `libhakozuna-${platform}.so`;
        return [name, sha256(Deno.readFileSync(join(DIST, name)))];
      }),
    );
    Deno.writeTextFileSync(
      join(served, "pkg/ffi/checksums.ts"),
      `export const CHECKSUMS_VERSION: string = "${VERSION}";\n` +
        `export const CHECKSUMS: Readonly<Record<string, string>> = ${
          JSON.stringify(hashes)
        };\n`,
    );
    // The release: dist/ as built, and a copy with one byte changed.
    const release = join(tmp, "release");
    Deno.mkdirSync(join(release, "tampered"), { recursive: true });
    for (const name of Object.keys(hashes)) {
      const bytes = Deno.readFileSync(join(DIST, name));
      Deno.writeFileSync(join(release, name), bytes);
      bytes[bytes.length >> 1] ^= 0xff;
      Deno.writeFileSync(join(release, "tampered", name), bytes);
    }

    const home = join(tmp, "home");
    Deno.mkdirSync(home);
    const write = (name: string, text: string) => {
      Deno.writeTextFileSync(join(home, name), text);
      return name;
    };
    const netPermissions = ["--allow-ffi", "--allow-env", "--allow-read"];

    let jsr = serveDirectory(served);
    let releases = serveDirectory(release);
    // A user's script that opens the package at `from` with openAsync,
    // which downloads the library from `url` into the cache under `dir`.
    const download = (dir: string, url: string, name: string, from: string) =>
      user(home, { DENO_DIR: dir, HAKOZUNA_DOWNLOAD_URL: url }, [
        "run",
        ...netPermissions,
        "--allow-write",
        `--allow-net=${releases.host}`,
        `--allow-import=${jsr.host}`,
        write(name, SCRIPT(from, "openAsync")),
      ]);
    const pkg = `${jsr.url}pkg/`;
    const denoDir = join(tmp, "deno-dir");
    const cacheDir = join(denoDir, "hakozuna", VERSION);
    transcript.push(
      `# package: ${pkg} (the deno publish --dry-run file set: ${files.length} files)`,
      `# release: ${releases.url} (dist/: ${Object.keys(hashes).join(", ")})`,
      `# cwd ${home}, empty DENO_DIR, no HAKOZUNA_LIB`,
    );

    // 1. First use: openAsync downloads into the cache, verified.
    const first = await download(denoDir, releases.url, "first.ts", pkg);
    const opened = JSON.parse(expectExit(first, 0).stdout);
    assert.deepEqual(opened, {
      path: join(cacheDir, ARTIFACT),
      version: VERSION,
      ok: true,
      owned: true,
    });
    assert.deepEqual(listing(cacheDir), [ARTIFACT]);
    assert.deepEqual(releases.requests, [`/${ARTIFACT}`]);

    // 2. The CLI from the published set: path and run work, compare says
    // it needs a checkout.
    const cliDenoDir = join(tmp, "cli-deno-dir");
    const cliEnv = {
      DENO_DIR: cliDenoDir,
      HAKOZUNA_DOWNLOAD_URL: releases.url,
    };
    const cliArgs = ["run", "-A", `${pkg}cli.ts`];
    const path = expectExit(await user(home, cliEnv, [...cliArgs, "path"]), 0);
    assert.equal(
      path.stdout,
      `${join(cliDenoDir, "hakozuna", VERSION, ARTIFACT)}\n`,
    );
    const ran = await user(home, cliEnv, [
      ...cliArgs,
      "run",
      "--stats",
      "--",
      "sh",
      "-c",
      "cat /dev/null; exit 3",
    ]);
    assert.equal(ran.code, 3, ran.stderr);
    assert.match(ran.stderr, /^hakozuna: stats /m, "cat's malloc is hakozuna");
    const compare = await user(home, cliEnv, [
      ...cliArgs,
      "compare",
      "--",
      "true",
    ]);
    assert.equal(compare.code, 1);
    assert.match(compare.stderr, /needs a checkout of the repository/);

    // 3. The committed checksums: used only when they are this build's.
    const committedDir = join(tmp, "committed-deno-dir");
    const committed = await download(
      committedDir,
      releases.url,
      "committed.ts",
      `${jsr.url}committed/`,
    );
    const { CHECKSUMS, CHECKSUMS_VERSION } = await import(
      "../../ffi/checksums.ts"
    );
    const current = CHECKSUMS_VERSION === VERSION &&
      Object.entries(hashes).every(([name, hash]) => CHECKSUMS[name] === hash);
    if (current) {
      expectExit(committed, 0);
    } else {
      assert.equal(committed.code, 1, committed.stderr);
      assert.match(
        committed.stderr,
        /no SHA-256 recorded|SHA-256s in this package are for version|is not the recorded/,
      );
      assert.doesNotMatch(committed.stderr, /make/);
      assert.deepEqual(listing(join(committedDir, "hakozuna", VERSION)), []);
    }

    // 4. The servers stop; a second process opens from the cache.
    await jsr.stop();
    await releases.stop();
    const second = await user(home, { DENO_DIR: denoDir }, [
      "run",
      ...netPermissions,
      `--allow-import=${jsr.host}`,
      write("second.ts", SCRIPT(pkg, "open")),
    ]);
    assert.deepEqual(JSON.parse(expectExit(second, 0).stdout), opened);

    // 5. A tampered artifact is refused and nothing is cached.
    jsr = serveDirectory(served);
    releases = serveDirectory(release);
    const tamperedDir = join(tmp, "tampered-deno-dir");
    const tampered = await download(
      tamperedDir,
      `${releases.url}tampered/`,
      "tampered.ts",
      `${jsr.url}pkg/`,
    );
    await jsr.stop();
    await releases.stop();
    assert.equal(tampered.code, 1);
    assert.match(
      tampered.stderr,
      new RegExp(
        `SHA-256 [0-9a-f]{64} is not the recorded ${
          hashes[ARTIFACT]
        }; refused, nothing cached`,
      ),
    );
    assert.doesNotMatch(tampered.stderr, /make/);
    assert.deepEqual(listing(join(tamperedDir, "hakozuna", VERSION)), []);
  } finally {
    Deno.mkdirSync(join(ROOT, "build/e2e"), { recursive: true });
    Deno.writeTextFileSync(
      join(ROOT, "build/e2e/session.txt"),
      transcript.join("\n") + "\n",
    );
    Deno.removeSync(tmp, { recursive: true });
  }
});
