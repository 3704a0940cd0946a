/** Finding the library: each step of the chain, and the errors when none works. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { LibraryNotFoundError, open } from "../../mod.ts";
import {
  type ResolveContext,
  resolveLibrary,
  resolveLibraryAsync,
} from "../../ffi/resolve.ts";
import { VERSION } from "../../ffi/version.ts";
import { expectExit, fixture, runDeno, withEnv } from "./helpers.ts";

/** The context of a package at `root`, on Linux x86_64, with no checksums. */
const at = (root: URL): ResolveContext => ({
  packageRoot: root,
  os: "linux",
  arch: "x86_64",
  checksums: {},
  checksumsVersion: VERSION,
});

/** A directory laid out like a checkout, with or without a built library. */
function fakeCheckout(withLibrary: boolean) {
  const dir = Deno.makeTempDirSync({ prefix: "hakozuna-checkout-" });
  Deno.mkdirSync(join(dir, "native"));
  Deno.writeTextFileSync(join(dir, "native/build.zig"), "");
  const library = join(dir, "native/zig-out/lib/libhakozuna.so");
  if (withLibrary) {
    Deno.mkdirSync(join(dir, "native/zig-out/lib"), { recursive: true });
    using hz = open();
    Deno.copyFileSync(hz.path, library);
  }
  return {
    root: pathToFileURL(dir + "/"),
    library,
    [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }),
  };
}

Deno.test("open({ path }) to a missing file names it", () => {
  const missing = "/nonexistent/hakozuna/libhakozuna.so";
  assert.throws(
    () => open({ path: missing }),
    (error: Error) =>
      error.message.includes(missing) && error.message.includes("path option"),
  );
});

Deno.test("HAKOZUNA_LIB to a missing file names it, with no fallback", async () => {
  const missing = "/nonexistent/from-env/libhakozuna.so";
  await withEnv({ HAKOZUNA_LIB: missing }, () => {
    assert.throws(
      () => open(),
      (error: Error) =>
        error.message.includes(missing) &&
        error.message.includes("HAKOZUNA_LIB"),
    );
  });
});

Deno.test("a file that is not a library is refused with the loader's reason", () => {
  const notLibrary = fixture("resolve.ts");
  assert.throws(
    () => open({ path: notLibrary }),
    new RegExp(`cannot load ${notLibrary} \\(from path option\\): .+`),
  );
});

Deno.test("HAKOZUNA_LIB comes before the checkout build", async () => {
  using checkout = fakeCheckout(true);
  const chosen = "/some/where/libhakozuna.so";
  await withEnv({ HAKOZUNA_LIB: chosen }, () => {
    assert.deepEqual(resolveLibrary({}, at(checkout.root)), {
      path: chosen,
      source: "HAKOZUNA_LIB",
    });
    assert.deepEqual(
      resolveLibrary({ path: "/x.so" }, at(checkout.root)),
      { path: "/x.so", source: "path option" },
    );
  });
});

Deno.test("the checkout build is found next to the module", async () => {
  using checkout = fakeCheckout(true);
  await withEnv({ HAKOZUNA_LIB: undefined }, () => {
    assert.deepEqual(resolveLibrary({}, at(checkout.root)), {
      path: checkout.library,
      source: "checkout",
    });
  });
});

Deno.test("with no library, one error lists every step and `make`", async () => {
  using checkout = fakeCheckout(false);
  await withEnv({ HAKOZUNA_LIB: undefined }, () => {
    assert.throws(
      () => resolveLibrary({}, at(checkout.root)),
      (error: LibraryNotFoundError) => {
        assert.ok(error instanceof LibraryNotFoundError);
        assert.deepEqual(error.steps, [
          "open({ path }): not given",
          "HAKOZUNA_LIB: not set",
          `checkout build ${checkout.library}: not built`,
          "release artifact libhakozuna-linux-x86_64.so: no SHA-256 " +
          "recorded in this package (ffi/checksums.ts is written by " +
          "`make release`; in a checkout, `make` builds the library instead)",
        ]);
        assert.match(error.message, /Fix: run `make` in /);
        return true;
      },
    );
  });
});

Deno.test("a package loaded over https has no checkout step", async () => {
  await withEnv({ HAKOZUNA_LIB: undefined }, () => {
    const root = new URL("https://jsr.io/@hakozuna/hakozuna/0.1.0/");
    assert.throws(
      () => resolveLibrary({}, at(root)),
      /checkout build: package loaded from https:\/\/jsr\.io\/.*, not a file/,
    );
  });
});

Deno.test("refused permissions count as unset and the error names the flag", async () => {
  using checkout = fakeCheckout(true);
  const output = await runDeno(
    [`--allow-read=${fixture("")}`],
    fixture("resolve.ts"),
    [checkout.root.href],
    { env: { HAKOZUNA_LIB: "/should/not/be/read.so" } },
  );
  const { error } = JSON.parse(expectExit(output, 0).stdout);
  assert.match(
    error,
    /HAKOZUNA_LIB: not readable without --allow-env=HAKOZUNA_LIB/,
  );
  assert.match(error, /not readable without --allow-read/);
  assert.match(
    error,
    /Fix: grant --allow-env=HAKOZUNA_LIB, or grant --allow-read/,
  );
});

Deno.test("on an unsupported platform the error says so first", async () => {
  using checkout = fakeCheckout(false);
  await withEnv({ HAKOZUNA_LIB: undefined }, () => {
    const context = { ...at(checkout.root), os: "darwin", arch: "aarch64" };
    assert.throws(
      () => resolveLibrary({}, context),
      (error: Error) => {
        assert.match(
          error.message,
          /^hakozuna: unsupported platform darwin-aarch64: no prebuilt library \(there are for linux-x86_64, linux-aarch64\)/,
        );
        assert.match(
          error.message,
          /release artifact: none for darwin-aarch64/,
        );
        return true;
      },
    );
  });
});

/** A published copy of the package on disk: a file: URL, no native/. */
function publishedCopy() {
  const dir = Deno.makeTempDirSync({ prefix: "hakozuna-published-" });
  return {
    root: pathToFileURL(dir + "/"),
    [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }),
  };
}

Deno.test("outside a checkout the error never suggests make", async () => {
  using copy = publishedCopy();
  const roots = [
    copy.root,
    new URL(`https://jsr.io/@hakozuna/hakozuna/${VERSION}/`),
  ];
  await withEnv({ HAKOZUNA_LIB: undefined }, () => {
    for (const root of roots) {
      assert.throws(
        () => resolveLibrary({}, at(root)),
        (error: Error) => {
          assert.doesNotMatch(error.message, /make/);
          assert.match(error.message, /published without them/);
          assert.match(error.message, /HAKOZUNA_LIB to a libhakozuna\.so/);
          return true;
        },
      );
    }
    assert.throws(
      () => resolveLibrary({}, at(copy.root)),
      /is not a checkout \(no native\/build\.zig\)/,
    );
  });
});

Deno.test("checksums recorded for another version are not used", async () => {
  using copy = publishedCopy();
  await withEnv({ HAKOZUNA_LIB: undefined }, () => {
    const context = {
      ...at(copy.root),
      checksums: { "libhakozuna-linux-x86_64.so": "0".repeat(64) },
      checksumsVersion: "0.0.1",
    };
    assert.throws(
      () => resolveLibrary({}, context),
      new RegExp(
        `the SHA-256s in this package are for version "0\\.0\\.1", not ` +
          VERSION.replaceAll(".", "\\."),
      ),
    );
  });
});

Deno.test("from the cache, open() suggests openAsync and the CLI, the CLI its flags", async () => {
  using copy = publishedCopy();
  const context = {
    ...at(copy.root),
    checksums: { "libhakozuna-linux-x86_64.so": "0".repeat(64) },
  };
  await withEnv({
    HAKOZUNA_LIB: undefined,
    HAKOZUNA_CACHE_DIR: copy.root.pathname,
  }, async () => {
    assert.throws(
      () => resolveLibrary({}, context),
      (error: Error) => {
        assert.match(
          error.message,
          /Fix: download it with `await openAsync\(\)`/,
        );
        assert.match(error.message, /jsr:@hakozuna\/hakozuna\/cli path/);
        assert.match(error.message, /open\(\{ path \}\)/);
        return true;
      },
    );
    await assert.rejects(
      resolveLibraryAsync({ cache: "only", caller: "cli" }, context),
      (error: Error) => {
        assert.match(error.message, /not tried \(--cache only\)/);
        assert.match(error.message, /allow the download with --cache use/);
        assert.doesNotMatch(error.message, /open\(|openAsync|cache: "/);
        return true;
      },
    );
  });
});
