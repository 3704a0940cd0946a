/**
 * The one command-line parser of the package: the CLI (`cli.ts`) and the
 * benchmark runner (`bench/compare.ts`) both describe their options as a
 * list of {@linkcode Flag}s and parse with {@linkcode parseArgs}.
 *
 * Accepted forms: `--flag value`, `--flag=value`, boolean `--flag`, `--`
 * ending the options, and the first argument that is not an option ending
 * them too (`compare prog args` works without `--`). `-h` and `--help` set
 * `help`. Every mistake is a {@linkcode UsageError}.
 *
 * @module
 */

/** A command line the user got wrong: reported with the usage, exit status 2. */
export class UsageError extends Error {
  /** The message says what was wrong, without the usage text. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** One option: its spellings, whether it takes a value, and how to read it. */
export interface Flag {
  /** Spellings, e.g. `["--rounds"]`. */
  readonly names: readonly string[];
  /** Key in the parsed values; default: the first name without dashes. */
  readonly key?: string;
  /**
   * Reads the value (throw UsageError when it is wrong); absent for a
   * boolean flag, which is stored as `true`.
   */
  readonly parse?: (value: string, flag: string) => unknown;
}

/** The result of {@linkcode parseArgs}. */
export interface ParsedArgs {
  /** Parsed values by key; a flag given twice keeps the last value. */
  readonly values: Record<string, unknown>;
  /** The arguments after `--` or from the first non-option on. */
  readonly rest: string[];
  /** Whether `-h` or `--help` was given. */
  readonly help: boolean;
}

/** Parses `args` against `flags`; throws UsageError. */
export function parseArgs(
  args: readonly string[],
  flags: readonly Flag[],
): ParsedArgs {
  const values: Record<string, unknown> = {};
  let help = false;
  for (let i = 0; i < args.length; i++) {
    let arg = args[i];
    if (arg === "--") return { values, rest: args.slice(i + 1), help };
    if (!arg.startsWith("-") || arg === "-") {
      return { values, rest: args.slice(i), help };
    }
    if (arg === "-h" || arg === "--help") {
      help = true;
      continue;
    }
    let inline: string | undefined;
    const eq = arg.indexOf("=");
    if (arg.startsWith("--") && eq > 0) {
      [arg, inline] = [arg.slice(0, eq), arg.slice(eq + 1)];
    }
    const flag = flags.find((f) => f.names.includes(arg));
    if (!flag) throw new UsageError(`unknown option ${arg}`);
    const key = flag.key ?? flag.names[0].replace(/^-+/, "");
    if (!flag.parse) {
      if (inline !== undefined) {
        throw new UsageError(`${arg} takes no value`);
      }
      values[key] = true;
      continue;
    }
    if (inline === undefined) {
      if (i + 1 >= args.length) throw new UsageError(`${arg} needs a value`);
      inline = args[++i];
    }
    values[key] = flag.parse(inline, arg);
  }
  return { values, rest: [], help };
}

/** A value reader for an integer of at least `min`. */
export function integer(min: number): (value: string, flag: string) => number {
  return (value, flag) => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isInteger(n) || n < min) {
      throw new UsageError(
        `${flag} wants an integer >= ${min}, got "${value}"`,
      );
    }
    return n;
  };
}

/** A value reader for one of `choices`. */
export function oneOf<T extends string>(
  choices: readonly T[],
): (value: string, flag: string) => T {
  return (value, flag) => {
    if (!(choices as readonly string[]).includes(value)) {
      throw new UsageError(
        `${flag} must be one of ${choices.join(", ")}, got ${value}`,
      );
    }
    return value as T;
  };
}

/** The value as given. */
export function text(value: string): string {
  return value;
}
