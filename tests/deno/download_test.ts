/**
 * The release download: served from a loopback server, cached, verified,
 * written atomically, and explained when it fails.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { open, openAsync } from "../../mod.ts";
import { download, sha256 } from "../../ffi/cache.ts";
import {
  type ResolveContext,
  resolveLibrary,
  resolveLibraryAsync,
} from "../../ffi/resolve.ts";
import { VERSION } from "../../ffi/version.ts";
import {
  expectExit,
  fixture,
  listing,
  runDeno,
  tempDir,
  withEnv,
} from "./helpers.ts";

const NAME = "libhakozuna-linux-x86_64.so";
// The library these tests run against stands in for the release artifact.
const LIBRARY = (() => {
  using hz = open();
  return Deno.readFileSync(hz.path);
})();
const GOOD = sha256(LIBRARY);

/** A package as JSR serves it: no checkout, Linux x86_64, LIBRARY's hash. */
const JSR: ResolveContext = {
  packageRoot: new URL(`https://jsr.io/@hakozuna/hakozuna/${VERSION}/`),
  os: "linux",
  arch: "x86_64",
  checksums: { [NAME]: GOOD },
  checksumsVersion: VERSION,
};

/** A loopback HTTP server of `files`, recording the paths requested. */
function serve(files: Record<string, Uint8Array>) {
  const requests: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      const path = new URL(request.url).pathname;
      requests.push(path);
      const body = files[path];
      return body
        ? new Response(body.slice())
        : new Response("not found", { status: 404 });
    },
  );
  return {
    base: `http://127.0.0.1:${server.addr.port}/releases/v${VERSION}/`,
    requests,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

const release = (bytes: Uint8Array) => ({
  [`/releases/v${VERSION}/${NAME}`]: bytes,
});

/** Runs the download fixture in a child Deno with the permissions a user of
 * `openAsync` grants (the network only to this test's servers). */
const runDownload = (args: string[]) =>
  runDeno(
    [
      "--allow-ffi",
      "--allow-env",
      "--allow-read",
      "--allow-write",
      "--allow-net=127.0.0.1",
    ],
    fixture("download.ts"),
    args,
  );

/** Runs `body` with the cache in a fresh DENO_DIR and no HAKOZUNA_LIB. */
async function withCache(body: (dir: string, file: string) => Promise<void>) {
  using denoDir = tempDir("deno-dir");
  const dir = join(denoDir.path, "hakozuna", VERSION);
  await withEnv(
    {
      DENO_DIR: denoDir.path,
      HAKOZUNA_LIB: undefined,
      HAKOZUNA_CACHE_DIR: undefined,
      HAKOZUNA_DOWNLOAD_URL: undefined,
    },
    () => body(dir, join(dir, NAME)),
  );
}

Deno.test("download once, then every open uses the cache", async () => {
  await using server = serve(release(LIBRARY));
  await withCache(async (dir, file) => {
    const first = await resolveLibraryAsync({ url: server.base }, JSR);
    assert.deepEqual(first, { path: file, source: "download" });
    assert.deepEqual(server.requests, [`/releases/v${VERSION}/${NAME}`]);
    assert.deepEqual(listing(dir), [NAME], "no temporary file left");
    assert.equal(sha256(Deno.readFileSync(file)), GOOD);

    const again = await resolveLibraryAsync({ url: server.base }, JSR);
    assert.deepEqual(again, { path: file, source: "cache" });
    assert.deepEqual(resolveLibrary({}, JSR), { path: file, source: "cache" });
    assert.equal(server.requests.length, 1, "no second request");
  });
});

Deno.test("the url option is a directory even without a final slash", async () => {
  await using server = serve(release(LIBRARY));
  await withCache(async (_, file) => {
    const url = new URL(server.base.slice(0, -1));
    assert.equal((await resolveLibraryAsync({ url }, JSR)).path, file);
  });
});

Deno.test('cache: "only" with an empty cache is a clear error', async () => {
  await using server = serve(release(LIBRARY));
  await withCache(async (_, file) => {
    await assert.rejects(
      resolveLibraryAsync({ url: server.base, cache: "only" }, JSR),
      (error: Error) => {
        assert.match(error.message, /^hakozuna: cannot find libhakozuna\.so/);
        assert.ok(error.message.includes(`cache ${file}: not downloaded`));
        assert.ok(error.message.includes('not tried (cache: "only")'));
        assert.match(error.message, /Fix: .*cache: "use"/);
        return true;
      },
    );
    assert.deepEqual(server.requests, []);
  });
});

Deno.test("a download with the wrong SHA-256 is refused, nothing cached", async () => {
  const tampered = LIBRARY.slice();
  tampered[tampered.length >> 1] ^= 0xff;
  await using server = serve(release(tampered));
  await withCache(async (dir) => {
    await assert.rejects(
      resolveLibraryAsync({ url: server.base }, JSR),
      (error: Error) => {
        assert.ok(
          error.message.includes(`download ${server.base}${NAME}: SHA-256`),
        );
        assert.ok(error.message.includes(`is not the recorded ${GOOD}`));
        assert.ok(error.message.includes("refused, nothing cached"));
        return true;
      },
    );
    assert.deepEqual(listing(dir), []);
  });
});

Deno.test("a 404 is an error naming the URL", async () => {
  await using server = serve({});
  await withCache(async (dir) => {
    await assert.rejects(
      resolveLibraryAsync({ url: server.base }, JSR),
      (error: Error) =>
        error.message.includes(`download ${server.base}${NAME}: HTTP 404`),
    );
    assert.deepEqual(listing(dir), []);
  });
});

Deno.test("a server that is not there is an error naming the URL", async () => {
  const server = serve({});
  const url = server.base;
  await server[Symbol.asyncDispose]();
  await withCache(async () => {
    await assert.rejects(
      resolveLibraryAsync({ url }, JSR),
      (error: Error) =>
        error.message.includes(`download ${url}${NAME}: `) &&
        /connect|refused/i.test(error.message),
    );
  });
});

Deno.test("two concurrent opens in one process fetch once", async () => {
  await using server = serve(release(LIBRARY));
  await withCache(async (dir, file) => {
    const both = await Promise.all([
      resolveLibraryAsync({ url: server.base }, JSR),
      resolveLibraryAsync({ url: server.base }, JSR),
    ]);
    assert.deepEqual(both.map((r) => r.path), [file, file]);
    assert.equal(server.requests.length, 1);
    assert.deepEqual(listing(dir), [NAME]);
    assert.equal(sha256(Deno.readFileSync(file)), GOOD);
  });
});

Deno.test("two processes downloading at once leave one good file", async () => {
  await using server = serve(release(LIBRARY));
  await withCache(async (dir, file) => {
    const outputs = await Promise.all(
      [1, 2].map(() => runDownload([server.base, GOOD])),
    );
    for (const output of outputs) {
      const seen = JSON.parse(expectExit(output, 0).stdout);
      assert.equal(seen.path, file);
      assert.ok(["download", "cache"].includes(seen.source));
      assert.equal(seen.owns, true, "the downloaded library works");
    }
    assert.deepEqual(listing(dir), [NAME]);
    assert.equal(sha256(Deno.readFileSync(file)), GOOD);
  });
});

Deno.test('a damaged cached file is reported, and "use" downloads it again', async () => {
  await using server = serve(release(LIBRARY));
  await withCache(async (dir, file) => {
    Deno.mkdirSync(dir, { recursive: true });
    Deno.writeFileSync(file, LIBRARY.subarray(0, 1000));
    assert.throws(
      () => resolveLibrary({}, JSR),
      /SHA-256 \w+ is not the recorded \w+ \(damaged.*\n.*cache: "reload"/s,
    );
    const fixed = await resolveLibraryAsync({ url: server.base }, JSR);
    assert.equal(fixed.source, "download");
    assert.equal(sha256(Deno.readFileSync(file)), GOOD);
  });
});

Deno.test('cache: "reload" downloads even when cached', async () => {
  await using server = serve(release(LIBRARY));
  await withCache(async (dir) => {
    await resolveLibraryAsync({ url: server.base }, JSR);
    const reloaded = await resolveLibraryAsync(
      { url: server.base, cache: "reload" },
      JSR,
    );
    assert.equal(reloaded.source, "download");
    assert.equal(server.requests.length, 2);
    assert.deepEqual(listing(dir), [NAME]);
  });
});

Deno.test("nothing is downloaded without a recorded SHA-256", async () => {
  await using server = serve(release(LIBRARY));
  await withCache(async () => {
    await assert.rejects(
      resolveLibraryAsync({ url: server.base }, { ...JSR, checksums: {} }),
      /no SHA-256 recorded in this package/,
    );
    assert.deepEqual(server.requests, []);
  });
});

Deno.test("the cache is under DENO_DIR, else XDG_CACHE_HOME, else ~/.cache", async () => {
  using home = tempDir("home");
  const only = { cache: "only" } as const;
  const where = (vars: Record<string, string | undefined>) =>
    withEnv(
      { HAKOZUNA_LIB: undefined, HAKOZUNA_CACHE_DIR: undefined, ...vars },
      () =>
        resolveLibraryAsync(only, JSR).then(
          () => assert.fail("nothing is cached"),
          (error: Error) =>
            error.message.match(/cache (\S+): not downloaded/)![1],
        ),
    );
  const tail = join("hakozuna", VERSION, NAME);
  assert.equal(
    await where({ DENO_DIR: "/d", XDG_CACHE_HOME: "/x", HOME: home.path }),
    join("/d", tail),
  );
  assert.equal(
    await where({ DENO_DIR: undefined, XDG_CACHE_HOME: "/x", HOME: home.path }),
    join("/x", tail),
  );
  assert.equal(
    await where({
      DENO_DIR: undefined,
      XDG_CACHE_HOME: undefined,
      HOME: home.path,
    }),
    join(home.path, ".cache", tail),
  );
});

Deno.test("openAsync checks its download options", async () => {
  await assert.rejects(openAsync({ url: "ftp://example.com/" }), TypeError);
  await assert.rejects(openAsync({ url: "not a url" }), TypeError);
  await assert.rejects(
    openAsync({ cache: "always" as "use" }),
    /unknown cache mode "always"/,
  );
});

Deno.test("openAsync opens a local library without downloading", async () => {
  using hz = await openAsync({ url: "http://127.0.0.1:9/", cache: "only" });
  assert.ok(hz.owns(hz.malloc(8)));
});

Deno.test("HAKOZUNA_DOWNLOAD_URL is used when no url option is given", async () => {
  await using server = serve(release(LIBRARY));
  await using other = serve({});
  await withCache(async (_, file) => {
    await withEnv({ HAKOZUNA_DOWNLOAD_URL: server.base }, async () => {
      const resolved = await resolveLibraryAsync({}, JSR);
      assert.deepEqual(resolved, { path: file, source: "download" });
      // The option still wins over the variable.
      await assert.rejects(
        resolveLibraryAsync({ url: other.base, cache: "reload" }, JSR),
        /HTTP 404/,
      );
    });
    await withEnv({ HAKOZUNA_DOWNLOAD_URL: "file:///tmp/" }, async () => {
      await assert.rejects(
        resolveLibraryAsync({ cache: "reload" }, JSR),
        /HAKOZUNA_DOWNLOAD_URL: "file:\/\/\/tmp\/" is not an http or https URL/,
      );
    });
  });
});

Deno.test("HAKOZUNA_CACHE_DIR comes before DENO_DIR", async () => {
  await using server = serve(release(LIBRARY));
  using cacheDir = tempDir("cache-dir");
  await withCache(async (denoDirCache) => {
    await withEnv({ HAKOZUNA_CACHE_DIR: cacheDir.path }, async () => {
      const file = join(cacheDir.path, VERSION, NAME);
      const resolved = await resolveLibraryAsync({ url: server.base }, JSR);
      assert.deepEqual(resolved, { path: file, source: "download" });
      assert.deepEqual(resolveLibrary({}, JSR), {
        path: file,
        source: "cache",
      });
      assert.deepEqual(listing(denoDirCache), []);
    });
  });
});

/** A server that sends half the file, then the rest after `pauseMs`. */
function slowServer(bytes: Uint8Array, pauseMs: number) {
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => {
      const half = bytes.length >> 1;
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(bytes.slice(0, half));
          const timer = setTimeout(() => {
            timers.delete(timer);
            try {
              controller.enqueue(bytes.slice(half));
              controller.close();
            } catch {
              // The client went away (timed out).
            }
          }, pauseMs);
          timers.add(timer);
        },
      });
      return new Response(body, {
        headers: { "content-length": String(bytes.length) },
      });
    },
  );
  return {
    base: `http://127.0.0.1:${server.addr.port}/`,
    [Symbol.asyncDispose]: async () => {
      for (const timer of timers) clearTimeout(timer);
      await server.shutdown();
    },
  };
}

Deno.test("a download over a second reports progress, then completion", async () => {
  await using server = slowServer(LIBRARY, 1500);
  using dir = tempDir("progress");
  const lines: string[] = [];
  const file = await download({
    url: new URL(NAME, server.base),
    file: join(dir.path, NAME),
    sha256: GOOD,
  }, { progress: (line) => lines.push(line) });
  assert.equal(sha256(Deno.readFileSync(file)), GOOD);
  assert.ok(lines.length >= 2, lines.join("\n"));
  assert.match(
    lines[0],
    /^hakozuna: downloading http:\/\/127\.0\.0\.1:\d+\/libhakozuna-linux-x86_64\.so: [\d.]+ MiB of [\d.]+ MiB after 1\.\d s$/,
  );
  assert.match(
    lines.at(-1)!,
    /^hakozuna: downloaded .* \([\d.]+ MiB in 1\.\d s\)$/,
  );
});

Deno.test("a quick download prints nothing; a slow one on stderr", async () => {
  await using quick = serve(release(LIBRARY));
  await using slow = slowServer(LIBRARY, 1300);
  await withCache(async () => {
    const fast = await runDownload([
      quick.base,
      GOOD,
    ]);
    assert.equal(expectExit(fast, 0).stderr, "");
    const output = await runDownload([
      slow.base,
      GOOD,
      "reload",
    ]);
    assert.match(expectExit(output, 0).stderr, /^hakozuna: downloading /m);
  });
});

Deno.test("a download that takes longer than the timeout is abandoned", async () => {
  await using server = slowServer(LIBRARY, 5000);
  await withCache(async (dir) => {
    const started = Date.now();
    await assert.rejects(
      resolveLibraryAsync({ url: server.base, timeout: 300 }, JSR),
      /download http:.*: timed out after 0\.3 s \([\d.]+ MiB received\)/,
    );
    assert.ok(Date.now() - started < 3000);
    assert.deepEqual(listing(dir), []);
  });
  await assert.rejects(openAsync({ timeout: -1 }), /open\(\{ timeout \}\)/);
});
