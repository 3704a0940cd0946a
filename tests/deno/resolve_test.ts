/** Finding the library: each step of the chain, and the errors when none works. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { LibraryNotFoundError, open } from "../../mod.ts";
import { resolveLibrary } from "../../ffi/resolve.ts";
import { expectExit, fixture, runDeno } from "./helpers.ts";

/** Runs `body` with HAKOZUNA_LIB set to `value` (or unset), then restores it. */
function withLibraryEnv<T>(value: string | undefined, body: () => T): T {
  const saved = Deno.env.get("HAKOZUNA_LIB");
  if (value === undefined) Deno.env.delete("HAKOZUNA_LIB");
  else Deno.env.set("HAKOZUNA_LIB", value);
  try {
    return body();
  } finally {
    if (saved === undefined) Deno.env.delete("HAKOZUNA_LIB");
    else Deno.env.set("HAKOZUNA_LIB", saved);
  }
}

/** A directory laid out like a checkout, with or without a built library. */
function fakeCheckout(withLibrary: boolean) {
  const dir = Deno.makeTempDirSync({ prefix: "hakozuna-checkout-" });
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

Deno.test("HAKOZUNA_LIB to a missing file names it, with no fallback", () => {
  const missing = "/nonexistent/from-env/libhakozuna.so";
  withLibraryEnv(missing, () => {
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

Deno.test("HAKOZUNA_LIB comes before the checkout build", () => {
  using checkout = fakeCheckout(true);
  const chosen = "/some/where/libhakozuna.so";
  withLibraryEnv(chosen, () => {
    assert.deepEqual(resolveLibrary({}, { packageRoot: checkout.root }), {
      path: chosen,
      source: "HAKOZUNA_LIB",
    });
    assert.deepEqual(
      resolveLibrary({ path: "/x.so" }, { packageRoot: checkout.root }),
      { path: "/x.so", source: "path option" },
    );
  });
});

Deno.test("the checkout build is found next to the module", () => {
  using checkout = fakeCheckout(true);
  withLibraryEnv(undefined, () => {
    assert.deepEqual(resolveLibrary({}, { packageRoot: checkout.root }), {
      path: checkout.library,
      source: "checkout",
    });
  });
});

Deno.test("with no library, one error lists every step and `make`", () => {
  using checkout = fakeCheckout(false);
  withLibraryEnv(undefined, () => {
    assert.throws(
      () => resolveLibrary({}, { packageRoot: checkout.root }),
      (error: LibraryNotFoundError) => {
        assert.ok(error instanceof LibraryNotFoundError);
        assert.deepEqual(error.steps, [
          "open({ path }): not given",
          "HAKOZUNA_LIB: not set",
          `checkout build ${checkout.library}: not built`,
        ]);
        assert.match(error.message, /Fix: run `make` in /);
        return true;
      },
    );
  });
});

Deno.test("a package loaded over https has no checkout step", () => {
  withLibraryEnv(undefined, () => {
    const root = new URL("https://jsr.io/@hakozuna/hakozuna/0.1.0/");
    assert.throws(
      () => resolveLibrary({}, { packageRoot: root }),
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
