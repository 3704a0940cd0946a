/** cli.ts as a user runs it: output, errors on stderr, exit statuses. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { open } from "../../mod.ts";
import { VERSION } from "../../ffi/version.ts";
import {
  expectExit,
  fixture,
  type Output,
  ROOT,
  run,
  runDeno,
  type RunOptions,
  tempDir,
} from "./helpers.ts";

const CLI = join(ROOT, "cli.ts");
const LIBRARY = (() => {
  using hz = open();
  return hz.path;
})();

const cli = (args: string[], options: RunOptions = {}): Promise<Output> =>
  runDeno(["--allow-all"], CLI, args, {
    ...options,
    env: { HAKOZUNA_LIB: LIBRARY, ...options.env },
  });

/** fixtures/prog.c built with $ZIG cc (as make passes it), else cc. */
async function buildProgram(dir: string): Promise<string> {
  const zig = Deno.env.get("ZIG");
  const [compiler, ...first] = zig ? [zig, "cc"] : ["cc"];
  const program = join(dir, "prog");
  const args = [...first, "-O1", "-o", program, fixture("prog.c"), "-ldl"];
  expectExit(await run(compiler, args), 0);
  return program;
}

Deno.test("path prints the library's absolute path", async () => {
  const { stdout, stderr } = expectExit(await cli(["path"]), 0);
  assert.equal(stdout, `${LIBRARY}\n`);
  assert.equal(stderr, "");
  const relative = expectExit(
    await cli(["path"], {
      env: { HAKOZUNA_LIB: "libhakozuna.so" },
      cwd: join(LIBRARY, ".."),
    }),
    0,
  );
  assert.equal(relative.stdout, `${LIBRARY}\n`);
});

Deno.test("path fails with status 1 naming a missing library", async () => {
  const missing = "/nonexistent/libhakozuna.so";
  const output = await cli(["path"], { env: { HAKOZUNA_LIB: missing } });
  assert.equal(output.code, 1);
  assert.equal(output.stdout, "");
  assert.match(output.stderr, new RegExp(`HAKOZUNA_LIB.*${missing}`));
});

Deno.test("run preloads hakozuna and returns the program's status", async () => {
  using dir = tempDir("cli");
  const program = await buildProgram(dir.path);
  // Without the CLI the program sees glibc's malloc: the check can fail.
  const plain = expectExit(await run(program, ["0"]), 0);
  assert.equal(plain.stdout, "hakozuna malloc: no\n");

  const output = await cli(["run", "--", program, "7"]);
  assert.equal(output.code, 7, output.stderr);
  assert.equal(output.stdout, "hakozuna malloc: yes\n");
  assert.doesNotMatch(output.stderr, /hakozuna: stats/);
});

Deno.test("run --stats --policy prints the stats line of that lane", async () => {
  using dir = tempDir("cli");
  const program = await buildProgram(dir.path);
  const output = await cli([
    "run",
    "--stats",
    "--policy",
    "compact",
    "--",
    program,
  ]);
  expectExit(output, 0);
  assert.equal(output.stdout, "hakozuna malloc: yes\n");
  assert.match(output.stderr, /^hakozuna: stats .*policy=compact/m);
});

Deno.test("run reports a command that cannot run as shells do", async () => {
  const missing = await cli(["run", "--", "/nonexistent/program"]);
  assert.equal(missing.code, 127);
  assert.match(missing.stderr, /command not found: \/nonexistent\/program/);
  const notExecutable = await cli(["run", "--", fixture("prog.c")]);
  assert.equal(notExecutable.code, 126);
  assert.match(notExecutable.stderr, /cannot execute/);
  const killed = await cli(["run", "--", "sh", "-c", "kill -TERM $$"]);
  assert.equal(killed.code, 128 + 15);
});

Deno.test("usage errors exit 2 with the usage on stderr", async (t) => {
  const cases: [string[], RegExp][] = [
    [[], /no command given/],
    [["frobnicate"], /unknown command "frobnicate"/],
    [["run"], /no command to run/],
    [["run", "--policy", "fast", "--", "true"], /--policy must be one of/],
    [["run", "--policy"], /--policy needs a value/],
    [["run", "--verbose", "--", "true"], /unknown option --verbose/],
    [
      ["path", "--cache", "sometimes"],
      /--cache must be one of use, only, reload/,
    ],
    [["path", "--url", "::"], /--url: not a URL/],
    [["path", "extra"], /unexpected argument extra/],
    [["path", "--timeout", "0"], /--timeout must be a positive number/],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" ") || "(nothing)", async () => {
      const output = await cli(args);
      assert.equal(output.code, 2);
      assert.equal(output.stdout, "");
      assert.match(output.stderr, message);
      assert.match(output.stderr, /usage: hakozuna/);
    });
  }
});

Deno.test("--help for the CLI and each command goes to stdout, status 0", async () => {
  for (const args of [["--help"], ["path", "--help"], ["run", "--help"]]) {
    const output = expectExit(await cli(args), 0);
    assert.match(output.stdout, /^usage: hakozuna/);
    assert.equal(output.stderr, "");
  }
});

Deno.test("outside a checkout, CLI errors name CLI flags, never make or API options", async () => {
  // A published copy on disk: cli.ts and ffi/, no native/, with checksums.
  using dir = tempDir("cli-published");
  Deno.copyFileSync(CLI, join(dir.path, "cli.ts"));
  Deno.mkdirSync(join(dir.path, "ffi"));
  for (const entry of Deno.readDirSync(join(ROOT, "ffi"))) {
    Deno.copyFileSync(
      join(ROOT, "ffi", entry.name),
      join(dir.path, "ffi", entry.name),
    );
  }
  Deno.writeTextFileSync(
    join(dir.path, "ffi/checksums.ts"),
    `export const CHECKSUMS_VERSION: string = "${VERSION}";\n` +
      `export const CHECKSUMS = { "libhakozuna-linux-x86_64.so": ` +
      `"${"0".repeat(64)}", "libhakozuna-linux-aarch64.so": ` +
      `"${"0".repeat(64)}" };\n`,
  );
  using cache = tempDir("cli-cache");
  const output = await runDeno(
    ["--allow-all"],
    join(dir.path, "cli.ts"),
    ["path", "--cache", "only"],
    { unset: ["HAKOZUNA_LIB"], env: { HAKOZUNA_CACHE_DIR: cache.path } },
  );
  assert.equal(output.code, 1, output.stderr);
  assert.match(output.stderr, /not tried \(--cache only\)/);
  assert.match(output.stderr, /Fix: allow the download with --cache use/);
  assert.match(output.stderr, /HAKOZUNA_LIB/);
  assert.doesNotMatch(output.stderr, /make|open\(|openAsync|cache: "/);

  const compare = await runDeno(
    ["--allow-all"],
    join(dir.path, "cli.ts"),
    ["compare", "--", "true"],
  );
  assert.equal(compare.code, 1);
  assert.match(compare.stderr, /needs a checkout of the repository/);
});
