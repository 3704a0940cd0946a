/** The package against its contracts: the C header, deno.json, the README. */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { open } from "../../mod.ts";
import { COUNTERS } from "../../ffi/stats.ts";
import { SYMBOLS } from "../../ffi/symbols.ts";
import { VERSION } from "../../ffi/version.ts";
import { expectExit, MOD_URL, ROOT, run, runDeno } from "./helpers.ts";

const header = Deno.readTextFileSync(join(ROOT, "native/include/hakozuna.h"));
const denoJson = JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json")));

const camelCase = (name: string) =>
  name.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());

Deno.test("the stats layout follows struct hz_stats in hakozuna.h", () => {
  const body = header.match(/struct hz_stats \{([^}]*)\};/)![1];
  const fields = [...body.matchAll(/^\s*(uint32_t|uint64_t) (\w+);/gm)]
    .map(([, type, name]) => [type, name]);
  assert.deepEqual(fields.slice(0, 2), [
    ["uint32_t", "version"],
    ["uint32_t", "size"],
  ]);
  const counters = fields.slice(2);
  assert.ok(counters.every(([type]) => type === "uint64_t"));
  assert.deepEqual(counters.map(([, name]) => camelCase(name)), [...COUNTERS]);
});

Deno.test("every hz_* function of hakozuna.h is bound, and nothing else", () => {
  const declared = [...header.matchAll(/^[\w *]*?\b(hz_\w+)\(/gm)]
    .map(([, name]) => name);
  assert.deepEqual(Object.keys(SYMBOLS).sort(), declared.sort());
});

Deno.test("deno.json's version is the library's hz_version() and VERSION", () => {
  using hz = open();
  assert.equal(denoJson.version, hz.version);
  assert.equal(denoJson.version, VERSION);
  const zon = Deno.readTextFileSync(join(ROOT, "native/build.zig.zon"));
  assert.equal(zon.match(/^\s*\.version = "([^"]*)",/m)?.[1], VERSION);
  assert.equal(denoJson.name, "@hakozuna/hakozuna");
});

Deno.test("the README's API example runs as written", async () => {
  const readme = Deno.readTextFileSync(join(ROOT, "README.md"));
  const section = readme.slice(readme.indexOf("## Deno API"));
  const example = section.match(/```ts\n([\s\S]*?)```/)![1];
  assert.match(example, /from "\.\/mod\.ts"/);
  // Saved next to mod.ts it imports "./mod.ts"; from a temporary directory,
  // the same file by URL.
  const dir = Deno.makeTempDirSync({ prefix: "hakozuna-readme-" });
  try {
    const file = join(dir, "example.ts");
    Deno.writeTextFileSync(file, example.replace('"./mod.ts"', `"${MOD_URL}"`));
    const output = await runDeno(
      ["--allow-ffi", "--allow-env", "--allow-read"],
      file,
    );
    const { stdout } = expectExit(output, 0);
    assert.match(stdout, /^hakozuna \d+\.\d+\.\d+, policy \w+$/m);
    assert.match(stdout, /^usable bytes: \d+ owned: true$/m);
    assert.match(stdout, /^refused: TypeError: .*not a live block/m);
    assert.match(stdout, /^\d+ allocations, \d+ bytes in use$/m);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/** The local modules of an export's graph (missing ones too), from ROOT. */
async function localModules(entry: string): Promise<string[]> {
  const info = await run(Deno.execPath(), ["info", "--json", entry], {
    cwd: ROOT,
  });
  const { modules } = JSON.parse(expectExit(info, 0).stdout);
  return modules
    .map((module: { specifier: string }) => module.specifier)
    .filter((specifier: string) => specifier.startsWith("file:"))
    .map((specifier: string) => relative(ROOT, fileURLToPath(specifier)));
}

/** A publish.include glob as a RegExp (only `**` and `*` are used). */
const globRegExp = (glob: string) =>
  new RegExp(
    "^" + glob.replace(/[.+?^${}()|[\]\\]/g, "\\$&")
      .replace(/\*\*\//g, "\0").replace(/\*/g, "[^/]*")
      .replace(/\0/g, "(.*/)?") +
      "$",
  );

Deno.test("deno.json exports mod.ts and ./cli, and publishes their modules", async () => {
  assert.deepEqual(denoJson.exports, { ".": "./mod.ts", "./cli": "./cli.ts" });
  const include = (denoJson.publish.include as string[]).map(globRegExp);
  const graph = [
    ...await localModules("mod.ts"),
    ...await localModules("cli.ts"),
  ];
  assert.ok(graph.includes("ffi/resolve.ts"));
  // compare runs bench/ of a checkout as a process: bench/ is not published.
  assert.ok(!graph.some((file) => file.startsWith("bench/")));
  const unpublished = graph.filter((file) =>
    !include.some((re) => re.test(file))
  );
  assert.deepEqual(unpublished, [], "modules JSR users would lack");
  assert.ok(!include.some((re) => re.test("tests/deno/api_test.ts")));
  assert.ok(!include.some((re) => re.test("native/src/shim.zig")));
  assert.ok(!include.some((re) => re.test("bench/compare.ts")));
});
