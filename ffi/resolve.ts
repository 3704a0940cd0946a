/**
 * Where the native library is: the one place that decides which file is
 * loaded, and that explains every place it looked when none works.
 *
 * Order:
 * 1. the `path` option;
 * 2. `$HAKOZUNA_LIB`;
 * 3. the checkout's build output, when this module was loaded from a `file:`
 *    URL in a checkout (a directory with native/build.zig), not from JSR;
 * 4. the release artifact for this platform in the download cache
 *    (`$HAKOZUNA_CACHE_DIR` or the default, see cache.ts), verified against
 *    ffi/checksums.ts; {@linkcode resolveLibraryAsync} also downloads it there
 *    when missing, from the `url` option, else `$HAKOZUNA_DOWNLOAD_URL`, else
 *    this version's GitHub release.
 *
 * Errors suggest what fits where the user is: `make` only in a checkout, and
 * for the command line its flags rather than API options.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import {
  type Artifact,
  cacheDirectory,
  type CacheMode,
  DEFAULT_TIMEOUT_MS,
  download,
  type Outcome,
  readCached,
} from "./cache.ts";
import { CHECKSUMS, CHECKSUMS_VERSION } from "./checksums.ts";
import { readEnv } from "./env.ts";
import { artifactName, SUPPORTED } from "./platform.ts";
import { VERSION } from "./version.ts";

/** The variable naming the library file when no `path` option is given. */
export const LIBRARY_ENV = "HAKOZUNA_LIB";

/** The library file name of a native build (`zig build` in native/). */
export const LIBRARY_FILE = "libhakozuna.so";

/** Where release artifacts are downloaded from by default, for this version. */
export const RELEASE_URL =
  `https://github.com/hakozuna/hakozuna/releases/download/v${VERSION}/`;

/**
 * The variable naming the directory URL to download release artifacts from
 * (a mirror) when no `url` option is given.
 */
export const DOWNLOAD_URL_ENV = "HAKOZUNA_DOWNLOAD_URL";

/** Where a resolved library came from, as error messages name it. */
export type LibrarySource =
  | "path option"
  | typeof LIBRARY_ENV
  | "checkout"
  | "cache"
  | "download";

/** A library file to load, and which step of the chain picked it. */
export interface ResolvedLibrary {
  readonly path: string;
  readonly source: LibrarySource;
}

/** The inputs of resolution that callers choose. */
export interface ResolveOptions {
  readonly path?: string;
  /**
   * Directory URL of the release artifacts; default `$HAKOZUNA_DOWNLOAD_URL`,
   * else {@linkcode RELEASE_URL}.
   */
  readonly url?: string | URL;
  /** Default `"use"`; the synchronous resolution never downloads. */
  readonly cache?: CacheMode;
  /** Download timeout in milliseconds; default 60 000. */
  readonly timeout?: number;
  /**
   * Who asks, so that the fixes an error suggests are ones the user can
   * apply: API options (`"api"`, default) or command-line flags (`"cli"`).
   */
  readonly caller?: "api" | "cli";
}

/**
 * What resolution depends on besides the options; tests replace it to
 * resolve as if the module were elsewhere, on another platform, or with
 * other recorded checksums.
 */
export interface ResolveContext {
  /** URL of the package's root directory (where mod.ts is). */
  readonly packageRoot: URL;
  /** `Deno.build.os` and `Deno.build.arch`. */
  readonly os: string;
  readonly arch: string;
  /** SHA-256 of each release artifact, by file name. */
  readonly checksums: Readonly<Record<string, string>>;
  /** The version `checksums` belong to; used only when it is {@linkcode VERSION}. */
  readonly checksumsVersion: string;
}

/** The context of this copy of the package on this machine. */
export function defaultContext(): ResolveContext {
  return {
    packageRoot: new URL("../", import.meta.url),
    os: Deno.build.os,
    arch: Deno.build.arch,
    checksums: CHECKSUMS,
    checksumsVersion: CHECKSUMS_VERSION,
  };
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
  /** Builds the message from a headline, the steps tried and the fixes. */
  constructor(headline: string, steps: readonly string[], fixes: string[]) {
    super(
      `hakozuna: ${headline}. Tried, in order:\n` +
        steps.map((step, i) => `  ${i + 1}. ${step}`).join("\n") +
        `\nFix: ${fixes.join(", or ")}`,
    );
    this.name = "LibraryNotFoundError";
    this.steps = steps;
  }
}

/**
 * Resolves the library file without downloading (the cache is read only);
 * throws LibraryNotFoundError.
 */
export function resolveLibrary(
  options: ResolveOptions,
  context: ResolveContext = defaultContext(),
): ResolvedLibrary {
  const trail = new Trail(options.caller ?? "api");
  const local = resolveLocal(options, context, trail);
  if (local) return local;
  const artifact = releaseArtifact(options, context, trail);
  if (artifact) {
    const cached = trail.take(readCached(artifact, trail.words.reload));
    if (cached) return { path: cached, source: "cache" };
    trail.fixes.push(trail.words.download);
  }
  throw trail.error(context);
}

/**
 * Resolves the library file like {@linkcode resolveLibrary}, then, as the
 * `cache` option allows, downloads the release artifact into the cache.
 */
export async function resolveLibraryAsync(
  options: ResolveOptions,
  context: ResolveContext = defaultContext(),
): Promise<ResolvedLibrary> {
  const trail = new Trail(options.caller ?? "api");
  const words = trail.words;
  const local = resolveLocal(options, context, trail);
  if (local) return local;
  const artifact = releaseArtifact(options, context, trail);
  if (artifact) {
    const mode = options.cache ?? "use";
    if (mode === "reload") {
      trail.steps.push(
        `cache ${artifact.file}: skipped (${words.cache("reload")})`,
      );
    } else {
      const cached = trail.take(readCached(artifact, words.reload));
      if (cached) return { path: cached, source: "cache" };
    }
    if (mode === "only") {
      trail.steps.push(
        `download ${artifact.url}: not tried (${words.cache("only")})`,
      );
      trail.fixes.push(`allow the download with ${words.cache("use")}`);
    } else {
      try {
        const timeout = options.timeout ?? DEFAULT_TIMEOUT_MS;
        return {
          path: await download(artifact, { timeout }),
          source: "download",
        };
      } catch (error) {
        const message = (error as Error).message;
        trail.steps.push(`download ${artifact.url}: ${message}`);
        trail.fixes.push(
          message.startsWith("SHA-256")
            ? `download from a source of this version's release artifacts ` +
              `(${words.url} or ${DOWNLOAD_URL_ENV})`
            : `check the network and the URL (${words.url} or ` +
              `${DOWNLOAD_URL_ENV}), granting --allow-net --allow-write`,
        );
      }
    }
  }
  throw trail.error(context);
}

/** How fixes are worded for each caller: API options or CLI flags. */
interface Words {
  readonly caller: "api" | "cli";
  /** The option or flag naming the download URL. */
  readonly url: string;
  /** A cache mode as the caller sets it. */
  cache(mode: CacheMode): string;
  /** How to download the library again over a damaged cached file. */
  readonly reload: string;
  /** How to download the library when it is not cached. */
  readonly download: string;
}

const API_WORDS: Words = {
  caller: "api",
  url: "the url option",
  cache: (mode) => `cache: "${mode}"`,
  reload: `download it again with openAsync({ cache: "reload" })`,
  download: "download it with `await openAsync()` (or `deno run -A " +
    "jsr:@hakozuna/hakozuna/cli path`), granting --allow-net --allow-write",
};

const CLI_WORDS: Words = {
  caller: "cli",
  url: "--url",
  cache: (mode) => `--cache ${mode}`,
  reload: "download it again with --cache reload",
  download: "download it: leave out --cache only",
};

/** Steps tried so far and the fixes they suggest. */
class Trail {
  readonly steps: string[] = [];
  readonly fixes: string[] = [];
  readonly words: Words;
  constructor(caller: "api" | "cli") {
    this.words = caller === "cli" ? CLI_WORDS : API_WORDS;
  }
  /** The value of `outcome`, or undefined after recording why not. */
  take<T>(outcome: Outcome<T>): T | undefined {
    if (!("reason" in outcome)) return outcome.value;
    this.steps.push(outcome.reason);
    if (outcome.fix) this.fixes.push(outcome.fix);
    return undefined;
  }
  error({ os, arch }: ResolveContext): LibraryNotFoundError {
    const fixes = [
      ...new Set(this.fixes),
      `set ${LIBRARY_ENV} to a ${LIBRARY_FILE} built from source`,
    ];
    if (this.words.caller === "api") fixes.push("pass open({ path })");
    const headline = artifactName(os, arch)
      ? `cannot find ${LIBRARY_FILE}`
      : `unsupported platform ${os}-${arch}: no prebuilt library (there ` +
        `are for ${SUPPORTED.join(", ")}) and none found`;
    return new LibraryNotFoundError(headline, this.steps, fixes);
  }
}

/** Steps 1 to 3: the files a user or a checkout provides. */
function resolveLocal(
  options: ResolveOptions,
  context: ResolveContext,
  trail: Trail,
): ResolvedLibrary | undefined {
  // An explicit choice is taken as given: if it is wrong, loading it reports
  // the exact file, instead of quietly falling back to another library.
  if (options.path !== undefined) {
    return { path: options.path, source: "path option" };
  }
  if (trail.words.caller === "api") {
    trail.steps.push("open({ path }): not given");
  }

  const env = readEnv(LIBRARY_ENV);
  if (env.value !== undefined) return { path: env.value, source: LIBRARY_ENV };
  trail.take({
    reason: env.refused
      ? `${LIBRARY_ENV}: not readable without --allow-env=${LIBRARY_ENV}`
      : `${LIBRARY_ENV}: not set`,
    fix: env.refused ? `grant --allow-env=${LIBRARY_ENV}` : undefined,
  });

  const checkout = trail.take(checkoutLibrary(context.packageRoot));
  return checkout ? { path: checkout, source: "checkout" } : undefined;
}

/**
 * Whether the package at `root` is a checkout of the repository (it has the
 * native sources), where `make` builds the library; a published copy on
 * disk (vendored, or served from a file: URL) is not one.
 */
export function isCheckout(root: URL): boolean {
  if (root.protocol !== "file:") return false;
  const marker = fileURLToPath(new URL("native/build.zig", root));
  const { state } = Deno.permissions.querySync({ name: "read", path: marker });
  if (state !== "granted") return false;
  try {
    return Deno.statSync(marker).isFile;
  } catch {
    return false;
  }
}

/** The build output of a checkout, when this package is one. */
function checkoutLibrary(root: URL): Outcome<string> {
  if (root.protocol !== "file:") {
    return {
      reason: `checkout build: package loaded from ${root}, not a file`,
    };
  }
  const rootDir = fileURLToPath(root);
  const marker = fileURLToPath(new URL("native/build.zig", root));
  if (
    Deno.permissions.querySync({ name: "read", path: marker }).state ===
      "granted" && !isCheckout(root)
  ) {
    return {
      reason:
        `checkout build: ${rootDir} is not a checkout (no native/build.zig)`,
    };
  }
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
    if (Deno.statSync(path).isFile) return { value: path };
    return { reason: `checkout build ${path}: not a file`, fix: build };
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    return { reason: `checkout build ${path}: not built`, fix: build };
  }
}

/** Step 4's artifact for this platform, or undefined after recording why not. */
function releaseArtifact(
  options: ResolveOptions,
  context: ResolveContext,
  trail: Trail,
): Artifact | undefined {
  const name = artifactName(context.os, context.arch);
  if (!name) {
    trail.steps.push(
      `release artifact: none for ${context.os}-${context.arch}`,
    );
    return undefined;
  }
  // Never load code that cannot be verified: no hash, or hashes recorded for
  // another version's artifacts (a release that skipped `make release`).
  const where = isCheckout(context.packageRoot)
    ? " (ffi/checksums.ts is written by `make release`; in a checkout, " +
      "`make` builds the library instead)"
    : ` (version ${VERSION} was published without them)`;
  if (context.checksumsVersion !== VERSION && context.checksumsVersion !== "") {
    trail.steps.push(
      `release artifact ${name}: the SHA-256s in this package are for ` +
        `version ${JSON.stringify(context.checksumsVersion)}, not ${VERSION}` +
        where,
    );
    return undefined;
  }
  const sha256 = context.checksums[name];
  if (!sha256) {
    trail.steps.push(
      `release artifact ${name}: no SHA-256 recorded in this package${where}`,
    );
    return undefined;
  }
  const directory = trail.take(cacheDirectory(VERSION));
  if (!directory) return undefined;
  const base = downloadBase(options, trail);
  if (!base) return undefined;
  return {
    url: new URL(name, base),
    file: `${directory}/${name}`,
    sha256,
  };
}

/** The directory URL to download from: option, else environment, else GitHub. */
function downloadBase(
  options: ResolveOptions,
  trail: Trail,
): URL | undefined {
  if (options.url !== undefined) return directoryUrl(options.url);
  const env = readEnv(DOWNLOAD_URL_ENV);
  if (env.value === undefined) return directoryUrl(RELEASE_URL);
  const url = URL.parse(env.value);
  if (url?.protocol !== "http:" && url?.protocol !== "https:") {
    trail.take({
      reason: `${DOWNLOAD_URL_ENV}: ${
        JSON.stringify(env.value)
      } is not an http or https URL`,
      fix: `set ${DOWNLOAD_URL_ENV} to the directory URL of the artifacts`,
    });
    return undefined;
  }
  return directoryUrl(url);
}

/** `url` as a directory, so that the artifact name is appended to it. */
function directoryUrl(url: string | URL): URL {
  const directory = new URL(url);
  if (!directory.pathname.endsWith("/")) directory.pathname += "/";
  return directory;
}
