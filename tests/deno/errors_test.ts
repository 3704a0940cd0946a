/**
 * Every bad input ends in one of the package's error classes, with a message
 * of its own that starts with "hakozuna: " and says each thing once.
 */
import assert from "node:assert/strict";
import {
  ArgumentError,
  LibraryLoadError,
  LibraryNotFoundError,
  open,
  PointerError,
  SizeError,
} from "../../mod.ts";
import { expectExit, fixture, ROOT, run, runDeno } from "./helpers.ts";

/** Whether `error` is a `type` whose message is the package's, said once. */
function packageError(
  type: abstract new (...args: never[]) => Error,
  pattern: RegExp,
) {
  return (error: unknown) => {
    assert.ok(error instanceof type, `${error} is not a ${type.name}`);
    assert.equal(error.name, type.name);
    assert.match(error.message, /^hakozuna: /);
    assert.doesNotMatch(error.message, /hakozuna: .*hakozuna: /);
    assert.doesNotMatch(error.message, /Could not open library/);
    assert.match(error.message, pattern);
    return true;
  };
}

Deno.test("a foreign object as a pointer is a PointerError, Deno's error its cause", () => {
  using hz = open();
  const objects = [{}, [], Object.create(null), new Uint8Array(8)];
  for (const value of objects as unknown as Deno.PointerObject[]) {
    for (
      const [call, fn] of [
        ["free", () => hz.free(value)],
        ["owns", () => hz.owns(value)],
        ["usableSize", () => hz.usableSize(value)],
        ["realloc", () => hz.realloc(value, 8)],
      ] as const
    ) {
      assert.throws(fn, (error) => {
        packageError(
          PointerError,
          new RegExp(`^hakozuna: ${call}\\(pointer\\) must be a Deno`),
        )(error);
        assert.equal((error as PointerError).reason, "type");
        assert.ok((error as Error).cause instanceof TypeError, "Deno's error");
        return true;
      });
    }
  }
  for (const value of [0, 1n, "0x10", undefined, true]) {
    assert.throws(
      () => hz.free(value as unknown as Deno.PointerObject),
      packageError(PointerError, /must be a Deno.PointerObject or null, got/),
    );
  }
});

Deno.test("not a live block: foreign, interior and double frees, each said so", () => {
  using hz = open();
  const p = hz.malloc(64)!;
  assert.throws(
    () => hz.free(Deno.UnsafePointer.offset(p, 16)),
    (error) =>
      packageError(PointerError, /not a live block of this library/)(error) &&
      (error as PointerError).reason === "foreign",
  );
  hz.free(p);
  assert.throws(
    () => hz.free(p),
    (error) =>
      packageError(PointerError, /freed already \(double free\)/)(error) &&
      (error as PointerError).reason === "freed",
  );
});

Deno.test("wrong types and sizes: ArgumentError and SizeError with the call named", () => {
  using hz = open();
  assert.throws(
    () => hz.malloc("64" as unknown as number),
    packageError(
      ArgumentError,
      /^hakozuna: malloc\(size\) must be a number, got "64"$/,
    ),
  );
  assert.throws(
    () => hz.calloc(1, 64n as unknown as number),
    packageError(
      ArgumentError,
      /^hakozuna: calloc\(size\) must be a number, got bigint$/,
    ),
  );
  assert.throws(
    () => hz.malloc(2 ** 53),
    packageError(
      SizeError,
      /^hakozuna: malloc\(size\) must be an integer from 0/,
    ),
  );
  assert.throws(
    () => hz.alignedAlloc(24, 8),
    packageError(
      SizeError,
      /alignedAlloc\(alignment\) must be a power of two, got 24/,
    ),
  );
  assert.throws(
    () => open({ policy: "turbo" as "scale" }),
    packageError(ArgumentError, /unknown policy "turbo"/),
  );
  assert.throws(
    () => open(null as unknown as undefined),
    packageError(ArgumentError, /options must be an object/),
  );
});

Deno.test("a missing library file is a LibraryNotFoundError, said once", () => {
  assert.throws(
    () => open({ path: "/nonexistent/libhakozuna.so" }),
    (error) => {
      packageError(
        LibraryNotFoundError,
        /no library at \/nonexistent\/libhakozuna.so/,
      )(
        error,
      );
      const { message } = error as Error;
      assert.equal(message.split("/nonexistent/libhakozuna.so").length - 1, 2);
      return true;
    },
  );
});

Deno.test("a file that is not a hakozuna library is a LibraryLoadError", () => {
  const text = `${ROOT}README.md`;
  assert.throws(
    () => open({ path: text }),
    (error) =>
      packageError(
        LibraryLoadError,
        /^hakozuna: cannot load \/.*README.md \(from path option\): /,
      )(error) &&
      (error as LibraryLoadError).path === text,
  );
  assert.throws(
    () => open({ path: "libc.so.6" }),
    packageError(
      LibraryLoadError,
      /libc.so.6 \(from path option\) has no hz_\w+: it is not a hakozuna library/,
    ),
  );
});

const openError = async (permissions: string[], args: string[] = []) => {
  const output = await runDeno(
    [...permissions, "--allow-env", "--allow-read"],
    fixture("open_error.ts"),
    args,
  );
  return JSON.parse(expectExit(output, 0).stdout);
};

Deno.test("without --allow-ffi: a PermissionError that names the flag", async () => {
  const { path } = open();
  const seen = await openError([], [path]);
  assert.equal(seen.name, "PermissionError");
  assert.equal(seen.flag, "--allow-ffi");
  assert.equal(seen.message, `hakozuna: loading ${path} needs --allow-ffi`);
});

Deno.test("scoped --allow-ffi=<path>: a PermissionError, not Deno's NotCapable", async () => {
  const { path } = open();
  const seen = await openError([`--allow-ffi=${path}`], [path]);
  assert.equal(seen.name, "PermissionError");
  assert.equal(seen.flag, "--allow-ffi");
  assert.match(
    seen.message,
    /^hakozuna: scoped --allow-ffi=<path> is not enough/,
  );
  assert.deepEqual(await openError(["--allow-ffi"], [path]), {});
});

Deno.test("deno doc shows open's and openAsync's options as optional", async () => {
  const output = await run(Deno.execPath(), ["doc", "mod.ts"], {
    cwd: ROOT,
    env: { NO_COLOR: "1" },
  });
  const { stdout } = expectExit(output, 0);
  assert.match(stdout, /function open\(options\?: OpenOptions\): Hakozuna/);
  assert.match(
    stdout,
    /function openAsync\(options\?: OpenAsyncOptions\): Promise<Hakozuna>/,
  );
});
