/**
 * SHA-256 of each release artifact of version {@linkcode CHECKSUMS_VERSION},
 * written by `make release` from dist/*.so (tools/checksums.ts). A download
 * whose hash differs is refused, and so is every download when this version
 * is not the package's. Generated: do not edit.
 *
 * @module
 */

/** The version these checksums belong to. */
export const CHECKSUMS_VERSION: string = "";

/** Artifact file name to lowercase hex SHA-256. */
export const CHECKSUMS: Readonly<Record<string, string>> = {};
