/**
 * Permission-aware environment reads: a library probing optional settings must
 * neither prompt nor throw when `--allow-env` does not cover them.
 *
 * @module
 */

/** What reading one variable gave: its value, or why there is none. */
export type EnvRead =
  | { readonly value: string }
  | { readonly value?: undefined; readonly refused: boolean };

/**
 * Reads `name` if `--allow-env` grants it; a refused permission counts as
 * unset and is reported so that an error can name the flag to add.
 */
export function readEnv(name: string): EnvRead {
  const { state } = Deno.permissions.querySync({ name: "env", variable: name });
  if (state !== "granted") return { refused: true };
  const value = Deno.env.get(name);
  return value === undefined || value === "" ? { refused: false } : { value };
}
