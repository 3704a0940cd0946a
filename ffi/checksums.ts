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
    "35d6613d10d9c4451eb41329010f322a06a86be92da3396c3a500463a8a37f5d",
  "libhakozuna-linux-aarch64.so":
    "044e8265e5b8bbbe94603844e4cafec9511b83d5d846f66664473fb867359977",
};
