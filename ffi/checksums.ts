/**
 * SHA-256 of each release artifact, written by `make dist` from dist/*.so.
 * A download whose hash differs is refused. Generated: do not edit.
 *
 * @module
 */

/** Artifact file name to lowercase hex SHA-256. */
export const CHECKSUMS: Readonly<Record<string, string>> = {};
