/**
 * The options of `compare` (`make bench`, `deno task compare`, `hakozuna
 * compare`), parsed with the package's one parser (ffi/args.ts).
 */
import {
  type Flag,
  integer,
  parseArgs,
  text,
  UsageError,
} from "../ffi/args.ts";
import { ALLOCATOR_NAMES, type Extra } from "./allocators.ts";

export const USAGE = `usage:
  deno task compare [options]                   every workload under every allocator
  deno task compare --a SPEC --b SPEC [options] A/B comparison with a GO/NO-GO verdict
  deno task compare [options] -- COMMAND [ARGS…] your own program under every allocator

options:
  --quick            shorter workloads and fewer rounds (make bench QUICK=1)
  --rounds N         measured rounds after the warm-up (default: 5; A/B 20; command 5; --quick 3)
  --warmup N         unmeasured warm-up rounds first (default 1)
  --hakozuna PATH    hakozuna library to use (default: $HAKOZUNA_LIB, else native/zig-out/lib/libhakozuna.so)
  --allocators LIST  comma-separated subset of ${ALLOCATOR_NAMES.join(",")},
                     and any other as NAME=PATH of its shared library
  --only REGEX       only the workloads whose name matches
  --out DIR          where reports go (default: bench/results/latest.* for a full
                     run on a quiet machine, else the ignored bench/results/scratch/)
  --a SPEC, --b SPEC A/B sides: an allocator name or a .so path (default hakozuna)
  --a-policy P, --b-policy P
                     run that side with HZ_POLICY=P (e.g. compare two hakozuna policies)

Exit status: 0 done; 1 a run failed, an A/B verdict is NO-GO, or a command's exit
status or stdout differed from glibc's; 2 usage error (including a command that
no preload can reach: static or set-user-ID); 3 an A/B verdict is INCONCLUSIVE
(too noisy to decide).`;

export interface Options {
  quick: boolean;
  rounds?: number;
  warmup: number;
  hakozuna?: string;
  /** Known allocator names asked for (undefined: all). */
  allocators?: string[];
  /** Allocators added as NAME=PATH. */
  extra: Extra[];
  only?: RegExp;
  out?: string;
  a?: string;
  b?: string;
  aPolicy?: string;
  bPolicy?: string;
  command: string[];
  help: boolean;
}

/** `--allocators` entries: known names, and NAME=PATH for any other. */
function allocatorList(value: string): { names: string[]; extra: Extra[] } {
  const names: string[] = [], extra: Extra[] = [];
  for (const item of value.split(",").map((s) => s.trim()).filter(Boolean)) {
    const eq = item.indexOf("=");
    if (eq > 0) {
      const name = item.slice(0, eq), path = item.slice(eq + 1);
      if (!/^[\w.-]+$/.test(name) || !path) {
        throw new UsageError(`--allocators: bad NAME=PATH entry ${item}`);
      }
      if (ALLOCATOR_NAMES.includes(name)) {
        throw new UsageError(
          `--allocators: ${name} is a built-in name; pick another`,
        );
      }
      extra.push({ name, path });
    } else if (ALLOCATOR_NAMES.includes(item)) {
      names.push(item);
    } else {
      throw new UsageError(
        `unknown allocator ${item} (known: ${
          ALLOCATOR_NAMES.join(", ")
        }; add others as NAME=PATH)`,
      );
    }
  }
  return { names, extra };
}

const FLAGS: Flag[] = [
  { names: ["--quick"] },
  { names: ["--rounds"], parse: integer(1) },
  { names: ["--warmup"], parse: integer(0) },
  { names: ["--hakozuna"], parse: text },
  { names: ["--allocators"], parse: allocatorList },
  {
    names: ["--only"],
    parse: (re) => {
      try {
        return new RegExp(re);
      } catch {
        throw new UsageError(`--only: bad regular expression ${re}`);
      }
    },
  },
  { names: ["--out"], parse: text },
  { names: ["--a"], parse: text },
  { names: ["--b"], parse: text },
  { names: ["--a-policy"], key: "aPolicy", parse: text },
  { names: ["--b-policy"], key: "bPolicy", parse: text },
];

export function parseOptions(args: string[]): Options {
  const { values: v, rest, help } = parseArgs(args, FLAGS);
  const list = v.allocators as ReturnType<typeof allocatorList> | undefined;
  return {
    quick: v.quick === true,
    rounds: v.rounds as number | undefined,
    warmup: (v.warmup as number | undefined) ?? 1,
    hakozuna: v.hakozuna as string | undefined,
    allocators: list ? list.names : undefined,
    extra: list ? list.extra : [],
    only: v.only as RegExp | undefined,
    out: v.out as string | undefined,
    a: v.a as string | undefined,
    b: v.b as string | undefined,
    aPolicy: v.aPolicy as string | undefined,
    bPolicy: v.bPolicy as string | undefined,
    command: rest,
    help,
  };
}
