/**
 * SHA-256 of each release artifact of version {@linkcode CHECKSUMS_VERSION},
 * written by `make release` from dist/*.so (tools/checksums.ts). A download
 * whose hash differs is refused, and so is every download when this version
 * is not the package's. Generated: do not edit.
 *
 * @module
 */

/** The version these checksums belong to. */
export const CHECKSUMS_VERSION: string = "0.1.0";

/** Artifact file name to lowercase hex SHA-256. */
export const CHECKSUMS: Readonly<Record<string, string>> = {
  "libhakozuna-linux-x86_64.so":
    "adbad6a592291889df75c02cb51097b1de4b286d1ac709569932c1da4cc3d95f",
  "libhakozuna-linux-aarch64.so":
    "580765c805fc857d4bb1e4a6482292ba731bbce5c5f654cf4ec497677dccd574",
};
