/**
 * The package version, which is also the version of the native library it
 * binds (`hz_version()`) and of the release artifacts it downloads.
 *
 * @module
 */

/** Package and library version; a test keeps it equal to deno.json's. */
export const VERSION = "0.1.0";
