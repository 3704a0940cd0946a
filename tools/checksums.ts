/**
 * The release's SHA-256 table, ffi/checksums.ts: written from dist/ by
 * `make release`, and checked before publishing (`deno task publish`).
 *
 * ```sh
 * deno run --allow-read --allow-write=ffi/checksums.ts tools/checksums.ts write
 * deno run --allow-read tools/checksums.ts check [--root DIR] [--dist]
 * ```
 *
 * `check` fails (exit 1, one line per problem) when the versions of
 * deno.json, ffi/version.ts and native/build.zig.zon differ, when
 * ffi/checksums.ts records another version or lacks a platform, and, when
 * dist/ holds the artifacts (always with `--dist`), when their hashes differ
 * from the recorded ones. A package published with any of these would refuse
 * every download.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

/** What `check` found wrong, empty when the package may be published. */
export async function check(
  root: string,
  requireDist: boolean,
): Promise<{ version: string; problems: string[] }> {
  const problems: string[] = [];
  const version = readDenoJsonVersion(root);
  const { VERSION } = await load(root, "ffi/version.ts");
  if (VERSION !== version) {
    problems.push(`ffi/version.ts has ${VERSION}, deno.json ${version}`);
  }
  const zon = readText(join(root, "native/build.zig.zon"));
  if (zon !== undefined) {
    const native = zon.match(/^\s*\.version = "([^"]*)",/m)?.[1];
    if (native !== version) {
      problems.push(`native/build.zig.zon has ${native}, deno.json ${version}`);
    }
  }
  const { CHECKSUMS, CHECKSUMS_VERSION } = await load(root, "ffi/checksums.ts");
  const { SUPPORTED } = await load(root, "ffi/platform.ts");
  const fix = `run \`make release VERSION=${version}\``;
  if (CHECKSUMS_VERSION !== version) {
    problems.push(
      `ffi/checksums.ts records version ${
        JSON.stringify(CHECKSUMS_VERSION ?? null)
      }, the package is ${version}: ${fix}`,
    );
  }
  for (const platform of SUPPORTED as string[]) {
    const name = `libhakozuna-${platform}.so`;
    const recorded = (CHECKSUMS as Record<string, string>)[name];
    if (!/^[0-9a-f]{64}$/.test(recorded ?? "")) {
      problems.push(`ffi/checksums.ts has no SHA-256 for ${name}: ${fix}`);
      continue;
    }
    const file = join(root, "dist", name);
    const bytes = readBytes(file);
    if (bytes === undefined) {
      if (requireDist) problems.push(`${file}: missing (run \`make dist\`)`);
      continue;
    }
    const actual = sha256(bytes);
    if (actual !== recorded) {
      problems.push(
        `${file}: SHA-256 ${actual} is not the recorded ${recorded} ` +
          `(the native sources changed since the release): ${fix}`,
      );
    }
  }
  return { version, problems };
}

/** Writes ffi/checksums.ts from dist/ for deno.json's version. */
export async function write(root: string): Promise<string> {
  const version = readDenoJsonVersion(root);
  const { SUPPORTED } = await load(root, "ffi/platform.ts");
  const lines = (SUPPORTED as string[]).map((platform) => {
    const name = `libhakozuna-${platform}.so`;
    const file = join(root, "dist", name);
    const bytes = readBytes(file);
    if (bytes === undefined) throw new Error(`${file}: missing: run make dist`);
    return `  "${name}":\n    "${sha256(bytes)}",\n`;
  });
  const text = `/**
 * SHA-256 of each release artifact of version {@linkcode CHECKSUMS_VERSION},
 * written by \`make release\` from dist/*.so (tools/checksums.ts). A download
 * whose hash differs is refused, and so is every download when this version
 * is not the package's. Generated: do not edit.
 *
 * @module
 */

/** The version these checksums belong to. */
export const CHECKSUMS_VERSION: string = "${version}";

/** Artifact file name to lowercase hex SHA-256. */
export const CHECKSUMS: Readonly<Record<string, string>> = {
${lines.join("")}};
`;
  const file = join(root, "ffi/checksums.ts");
  Deno.writeTextFileSync(file, text);
  return file;
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function readDenoJsonVersion(root: string): string {
  const { version } = JSON.parse(
    Deno.readTextFileSync(join(root, "deno.json")),
  );
  if (typeof version !== "string") throw new Error("deno.json has no version");
  return version;
}

function load(root: string, file: string): Promise<Record<string, unknown>> {
  return import(pathToFileURL(resolve(root, file)).href);
}

function readText(file: string): string | undefined {
  const bytes = readBytes(file);
  return bytes && new TextDecoder().decode(bytes);
}

function readBytes(file: string): Uint8Array | undefined {
  try {
    return Deno.readFileSync(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

if (import.meta.main) {
  const [command, ...args] = Deno.args;
  let root = ".";
  let requireDist = false;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--root" && i + 1 < args.length) root = args[++i];
    else if (args[i] === "--dist") requireDist = true;
    else {
      console.error(`tools/checksums.ts: unknown argument ${args[i]}`);
      Deno.exit(2);
    }
  }
  if (command === "write") {
    console.log(`wrote ${await write(root)}`);
  } else if (command === "check") {
    const { version, problems } = await check(root, requireDist);
    if (problems.length) {
      console.error(
        `publish check: ${version} cannot be published:\n` +
          problems.map((p) => `  ${p}`).join("\n"),
      );
      Deno.exit(1);
    }
    console.error(`publish check: ${version}: versions and checksums agree`);
  } else {
    console.error(
      "usage: tools/checksums.ts write|check [--root DIR] [--dist]",
    );
    Deno.exit(2);
  }
}
