/**
 * Where the native library is: the one place that decides which file
 * `open()` loads, and that explains every place it looked when none works.
 *
 * Order: `open({ path })`, then `$HAKOZUNA_LIB`, then the checkout's build
 * output next to this module when it was loaded from a `file:` URL.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { readEnv } from "./env.ts";

/** The variable naming the library file when no `path` option is given. */
export const LIBRARY_ENV = "HAKOZUNA_LIB";

/** The library file name of a native build (`zig build` in native/). */
export const LIBRARY_FILE = "libhakozuna.so";

/** Where a resolved library came from, as error messages name it. */
export type LibrarySource = "path option" | typeof LIBRARY_ENV | "checkout";

/** A library file to load, and which step of the chain picked it. */
export interface ResolvedLibrary {
  readonly path: string;
  readonly source: LibrarySource;
}

/** The inputs of resolution that callers choose. */
export interface ResolveOptions {
  readonly path?: string;
}

/**
 * What resolution depends on besides the options; tests replace it to
 * resolve as if the module were somewhere else.
 */
export interface ResolveContext {
  /** URL of the package's mod.ts directory (its root). */
  readonly packageRoot: URL;
}

/** The context of this copy of the package. */
export function defaultContext(): ResolveContext {
  return { packageRoot: new URL("../", import.meta.url) };
}

/**
 * Thrown by `open()` when no step of the resolution chain yields a library
 * file; the message lists each step and the fix.
 *
 * @example
 * ```ts
 * import { LibraryNotFoundError, open } from "@hakozuna/hakozuna";
 * try {
 *   open().close();
 * } catch (error) {
 *   if (error instanceof LibraryNotFoundError) console.error(error.steps);
 *   else throw error;
 * }
 * ```
 */
export class LibraryNotFoundError extends Error {
  /** Each step tried, with why it gave nothing. */
  readonly steps: readonly string[];
  /** Builds the message from the steps tried and the fix to suggest. */
  constructor(steps: readonly string[], fix: string) {
    super(
      `hakozuna: cannot find ${LIBRARY_FILE}. Tried, in order:\n` +
        steps.map((step, i) => `  ${i + 1}. ${step}`).join("\n") +
        `\nFix: ${fix}`,
    );
    this.name = "LibraryNotFoundError";
    this.steps = steps;
  }
}

/** Resolves the library file synchronously; throws LibraryNotFoundError. */
export function resolveLibrary(
  options: ResolveOptions,
  context: ResolveContext = defaultContext(),
): ResolvedLibrary {
  // An explicit choice is taken as given: if it is wrong, loading it reports
  // the exact file, instead of quietly falling back to another library.
  if (options.path !== undefined) {
    return { path: options.path, source: "path option" };
  }
  const steps = ["open({ path }): not given"];
  const fixes: string[] = [];

  const env = readEnv(LIBRARY_ENV);
  if (env.value !== undefined) return { path: env.value, source: LIBRARY_ENV };
  if (env.refused) {
    steps.push(
      `${LIBRARY_ENV}: not readable without --allow-env=${LIBRARY_ENV}`,
    );
    fixes.push(`grant --allow-env=${LIBRARY_ENV}`);
  } else {
    steps.push(`${LIBRARY_ENV}: not set`);
  }

  const checkout = checkoutLibrary(context.packageRoot);
  if ("path" in checkout) return { path: checkout.path, source: "checkout" };
  steps.push(checkout.reason);
  if (checkout.fix) fixes.push(checkout.fix);

  fixes.push(
    `set ${LIBRARY_ENV} to a built ${LIBRARY_FILE}`,
    "pass open({ path })",
  );
  throw new LibraryNotFoundError(steps, fixes.join(", or "));
}

type Found = { path: string } | { reason: string; fix?: string };

/** The build output of a checkout, when this package is one. */
function checkoutLibrary(root: URL): Found {
  if (root.protocol !== "file:") {
    return {
      reason: `checkout build: package loaded from ${root}, not a file`,
    };
  }
  const rootDir = fileURLToPath(root);
  const path = fileURLToPath(
    new URL(`native/zig-out/lib/${LIBRARY_FILE}`, root),
  );
  const build = `run \`make\` in ${rootDir} to build it`;
  if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") {
    return {
      reason: `checkout build ${path}: not readable without --allow-read`,
      fix: "grant --allow-read",
    };
  }
  try {
    if (Deno.statSync(path).isFile) return { path };
    return { reason: `checkout build ${path}: not a file`, fix: build };
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    return { reason: `checkout build ${path}: not built`, fix: build };
  }
}
