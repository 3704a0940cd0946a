/** Shared by the Deno tests: paths and running Deno subprocesses. */
import { fileURLToPath } from "node:url";

/** The repository root. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** URL of mod.ts, for scripts written to temporary directories. */
export const MOD_URL = new URL("../../mod.ts", import.meta.url).href;

/** What a finished subprocess printed and returned. */
export interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@linkcode run}. */
export interface RunOptions {
  /** Variables to set in the child's environment. */
  env?: Record<string, string>;
  /** Variables of this process's environment the child must not see. */
  unset?: string[];
  cwd?: string;
}

/**
 * Runs a program with this process's environment, minus `unset`, plus `env`
 * (a cleared environment is the only way to remove a variable for a child).
 */
export async function run(
  program: string,
  args: string[],
  options: RunOptions = {},
): Promise<Output> {
  const env = { ...Deno.env.toObject(), ...options.env };
  for (const name of options.unset ?? []) delete env[name];
  const { code, stdout, stderr } = await new Deno.Command(program, {
    args,
    env,
    clearEnv: true,
    cwd: options.cwd,
    stdin: "null",
  }).output();
  const text = new TextDecoder();
  return { code, stdout: text.decode(stdout), stderr: text.decode(stderr) };
}

/** Runs `deno run <permissions> <script> <args>` with the Deno running us. */
export function runDeno(
  permissions: string[],
  script: string,
  args: string[] = [],
  options: RunOptions = {},
): Promise<Output> {
  return run(Deno.execPath(), ["run", ...permissions, script, ...args], {
    ...options,
    // A child that needs a library must find it the way this process does.
    env: { NO_COLOR: "1", ...options.env },
  });
}

/** Path of a fixture script in tests/deno/fixtures. */
export function fixture(name: string): string {
  return fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
}

/** Fails with the child's output when it did not exit with `code`. */
export function expectExit(output: Output, code: number): Output {
  if (output.code !== code) {
    throw new Error(
      `expected exit ${code}, got ${output.code}\n--- stdout\n${output.stdout}` +
        `--- stderr\n${output.stderr}`,
    );
  }
  return output;
}

/**
 * Runs `body` with environment variables set (or, for undefined, removed),
 * then puts them back, also when `body` is async.
 */
export async function withEnv<T>(
  vars: Record<string, string | undefined>,
  body: () => T | Promise<T>,
): Promise<T> {
  const saved = Object.keys(vars).map((name) => [name, Deno.env.get(name)]);
  const apply = (entries: (string | undefined)[][]) => {
    for (const [name, value] of entries) {
      if (value === undefined) Deno.env.delete(name!);
      else Deno.env.set(name!, value);
    }
  };
  apply(Object.entries(vars));
  try {
    return await body();
  } finally {
    apply(saved);
  }
}

/** A temporary directory, removed when disposed. */
export function tempDir(prefix: string): { path: string } & Disposable {
  const path = Deno.makeTempDirSync({ prefix: `hakozuna-${prefix}-` });
  return {
    path,
    [Symbol.dispose]: () => Deno.removeSync(path, { recursive: true }),
  };
}

/** The names in `dir`, or none when it does not exist. */
export function listing(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((entry) => entry.name);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}
