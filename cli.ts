/**
 * The hakozuna command line.
 *
 * ```sh
 * deno run -A jsr:@hakozuna/hakozuna/cli path            # the library file
 * LD_PRELOAD=$(deno run -A jsr:@hakozuna/hakozuna/cli path) ./prog
 * deno run -A jsr:@hakozuna/hakozuna/cli run --stats -- ./prog args
 * deno run -A cli.ts compare -- ./prog args              # in a checkout only
 * ```
 *
 * `path` and `run` need nothing built: from JSR they download this version's
 * release library (verified) as `openAsync()` does. `compare` runs the
 * benchmark harness of a checkout (bench/), which is not published.
 *
 * Exit status: 0 success; 1 the library could not be found or downloaded;
 * 2 usage error; for `run`, the command's own status (128 + N when killed by
 * signal N, 127 when it cannot be found, 126 when it cannot be executed);
 * for `compare`, the comparison's. Errors go to stderr.
 *
 * @module
 */
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type Flag, oneOf, parseArgs, UsageError } from "./ffi/args.ts";
import { CACHE_MODES, type CacheMode } from "./ffi/cache.ts";
import { POLICIES, type Policy } from "./ffi/policy.ts";
import {
  isCheckout,
  resolveLibraryAsync,
  type ResolveOptions,
} from "./ffi/resolve.ts";

const HELP = {
  main: `usage: hakozuna <command> [options]

commands:
  path      print the path of the hakozuna library (downloading it if needed)
  run       run a program with hakozuna preloaded as its malloc
  compare   compare a program's time and memory under every allocator
            (in a checkout of the repository)

Run \`hakozuna <command> --help\` for a command's options.`,
  path:
    `usage: hakozuna path [--url URL] [--cache use|only|reload] [--timeout SECONDS]

Prints the path of libhakozuna.so, found as open() finds it ($HAKOZUNA_LIB,
the checkout's build, the download cache), else downloaded (verified) into the
cache. Use it as: LD_PRELOAD=$(hakozuna path) ./prog

  --url URL        directory URL of the release artifacts (default:
                   $HAKOZUNA_DOWNLOAD_URL, else this version's GitHub release)
  --cache MODE     use (default), only (never download) or reload
  --timeout SECONDS  how long the download may take (default 60)

Environment: HAKOZUNA_LIB (a library file to use), HAKOZUNA_DOWNLOAD_URL (a
mirror), HAKOZUNA_CACHE_DIR (the cache's root directory).`,
  run:
    `usage: hakozuna run [--policy P] [--stats] [--url URL] [--cache MODE] -- <command> [args...]

Runs <command> with libhakozuna.so preloaded (LD_PRELOAD) and exits with its
status.

  --policy P    the allocator's policy lane: ${POLICIES.join(", ")} (HZ_POLICY)
  --stats       print the allocator's stats line on stderr at exit (HZ_STATS=1)
  --url, --cache, --timeout  as for \`hakozuna path\``,
  compare: `usage: hakozuna compare [options] -- <command> [args...]

Runs <command> under glibc, hakozuna and the other allocators found, in
interleaved rounds, and reports time and peak memory; same arguments as
\`deno task compare\`. It runs bench/compare.ts and the C helpers of a
checkout of the repository, so it works only from a checkout (\`deno run -A
cli.ts compare\` there), not from JSR. \`hakozuna compare --help\` there lists
its options.`,
} as const;

/**
 * Runs the command line `args` (without the program name) and returns the
 * exit status; output and errors go to stdout and stderr.
 *
 * @example
 * ```ts
 * import { main } from "@hakozuna/hakozuna/cli";
 * const status = await main(["path"]); // prints the library's path
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case "path":
        return await path(rest);
      case "run":
        return await run(rest);
      case "compare":
        return await compare(rest);
      case "-h":
      case "--help":
        console.log(HELP.main);
        return 0;
      case undefined:
        throw new UsageError("no command given");
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      const help = HELP[command as keyof typeof HELP] ?? HELP.main;
      console.error(`hakozuna: ${error.message}\n\n${help}`);
      return 2;
    }
    console.error(error instanceof Error ? error.message : String(error));
    return 1;
  }
}

async function path(args: string[]): Promise<number> {
  const options = parseOptions("path", args);
  if (options === "help") return 0;
  if (options.command.length) {
    throw new UsageError(`unexpected argument ${options.command[0]}`);
  }
  console.log(await libraryPath(options));
  return 0;
}

async function run(args: string[]): Promise<number> {
  const options = parseOptions("run", args);
  if (options === "help") return 0;
  const [program, ...programArgs] = options.command;
  if (program === undefined) throw new UsageError("no command to run");
  const library = await libraryPath(options);
  const preload = Deno.env.get("LD_PRELOAD");
  const env: Record<string, string> = {
    // First, so that its malloc is the one every later object binds to.
    LD_PRELOAD: preload ? `${library}:${preload}` : library,
  };
  if (options.policy) env.HZ_POLICY = options.policy;
  if (options.stats) env.HZ_STATS = "1";
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(program, { args: programArgs, env }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      console.error(`hakozuna run: command not found: ${program}`);
      return 127;
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      console.error(`hakozuna run: cannot execute ${program}`);
      return 126;
    }
    throw error;
  }
  // Deno reports a signal death as code 128 + N, as shells do.
  return (await child.status).code;
}

async function compare(args: string[]): Promise<number> {
  // The benchmark runner lives in bench/ of a checkout and is not published;
  // it runs as its own process, so that the package's module graph (what
  // `deno publish` takes) does not include it.
  const root = new URL("./", import.meta.url);
  if (!isCheckout(root)) {
    console.error(
      `hakozuna compare: needs a checkout of the repository (it runs ` +
        `bench/compare.ts and the C helpers built there), and this CLI was ` +
        `loaded from ${root}. In a clone: make bench-programs, then ` +
        `deno run -A cli.ts compare -- <command> (\`make print-deno\` prints ` +
        `the pinned deno). \`hakozuna run -- <command>\` works from here.`,
    );
    return 1;
  }
  const runner = fileURLToPath(new URL("bench/compare.ts", root));
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", runner, ...args],
  }).spawn();
  return (await child.status).code;
}

interface Options {
  url?: string;
  cache?: CacheMode;
  timeout?: number;
  policy?: Policy;
  stats?: boolean;
  command: string[];
}

const URL_FLAG: Flag = {
  names: ["--url"],
  parse: (url) => {
    if (!URL.canParse(url)) throw new UsageError(`--url: not a URL: ${url}`);
    return url;
  },
};
const CACHE_FLAG: Flag = { names: ["--cache"], parse: oneOf(CACHE_MODES) };
const TIMEOUT_FLAG: Flag = {
  names: ["--timeout"],
  parse: (seconds) => {
    const number = Number(seconds);
    if (!(number > 0) || number === Infinity) {
      throw new UsageError(
        `--timeout must be a positive number of seconds, got ${seconds}`,
      );
    }
    return number * 1000;
  },
};
const FLAGS: Record<"path" | "run", readonly Flag[]> = {
  path: [URL_FLAG, CACHE_FLAG, TIMEOUT_FLAG],
  run: [
    URL_FLAG,
    CACHE_FLAG,
    TIMEOUT_FLAG,
    { names: ["--policy"], parse: oneOf(POLICIES) },
    { names: ["--stats"] },
  ],
};

/** Parses `--flag value` options up to `--` or the first non-option. */
function parseOptions(
  command: "path" | "run",
  args: string[],
): Options | "help" {
  const { values, rest, help } = parseArgs(args, FLAGS[command]);
  if (help) {
    console.log(HELP[command]);
    return "help";
  }
  return { ...values, command: rest } as Options;
}

/**
 * The library's absolute path (the child may run elsewhere), checked to be a
 * file: a preload that is not there is only a warning from the loader.
 */
async function libraryPath(options: ResolveOptions): Promise<string> {
  const { path, source } = await resolveLibraryAsync({
    ...options,
    caller: "cli",
  });
  let isFile = false;
  try {
    isFile = Deno.statSync(path).isFile;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (!isFile) {
    throw new Error(
      `hakozuna: ${source} ${path}: does not exist or is not a file`,
    );
  }
  return resolve(path);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
