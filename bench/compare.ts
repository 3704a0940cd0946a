/**
 * The allocator comparison runner (`make bench`, `deno task compare`,
 * `hakozuna compare`).
 *
 *   compare [--quick] [--rounds N] ...         every workload under every allocator (mode_suite.ts)
 *   compare --a SPEC --b SPEC ...              A/B with a GO / NO-GO verdict (mode_ab.ts)
 *   compare [options] -- COMMAND [ARGS...]     any program under every allocator (mode_command.ts)
 *
 * The harness, file by file: options.ts (arguments, with ffi/args.ts),
 * select.ts and allocators.ts (what to measure), runner.ts and exec.ts
 * (interleaved rounds, one measured process), machine.ts (what it ran on,
 * the load), model.ts (the results), stats.ts, analysis.ts and verdict.ts
 * (what they mean), format.ts and render_*.ts (terminal, Markdown, SVG),
 * output.ts (where reports go).
 */
import { UsageError } from "../ffi/args.ts";
import { abMode } from "./mode_ab.ts";
import { commandMode } from "./mode_command.ts";
import { suiteMode } from "./mode_suite.ts";
import { type Options, parseOptions, USAGE } from "./options.ts";

/** Runs the comparison with the task's arguments; returns the exit status. */
export async function compare(args: string[]): Promise<number> {
  let o: Options;
  try {
    o = parseOptions(args);
    if (o.help) {
      console.log(USAGE);
      return 0;
    }
    if (o.command.length) return await commandMode(o);
    if (o.a || o.b || o.aPolicy || o.bPolicy) return await abMode(o);
    return await suiteMode(o);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`compare: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    console.error(`compare: ${e instanceof Error ? e.message : e}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await compare(Deno.args));
