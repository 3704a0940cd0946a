/**
 * The platforms with a prebuilt library (built by `make dist`).
 *
 * @module
 */

/** `os-arch` pairs (Deno.build names) that have a release artifact. */
export const SUPPORTED = ["linux-x86_64", "linux-aarch64"] as const;

/** The release artifact's file name for a platform, e.g. libhakozuna-linux-x86_64.so. */
export function artifactName(os: string, arch: string): string | undefined {
  const platform = `${os}-${arch}`;
  return (SUPPORTED as readonly string[]).includes(platform)
    ? `libhakozuna-${platform}.so`
    : undefined;
}
