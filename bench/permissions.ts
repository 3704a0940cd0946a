/**
 * The bench files run subprocesses and open libraries; plain `deno bench`
 * grants nothing, so say how to run them instead of failing on the first
 * denied call.
 */
export function requireBenchPermissions(): void {
  const needed: Deno.PermissionDescriptor[] = [
    { name: "read" },
    { name: "run" },
    { name: "env" },
    { name: "ffi" },
  ];
  const missing = needed.filter((p) =>
    Deno.permissions.querySync(p).state !== "granted"
  ).map((p) => p.name);
  if (missing.length) {
    throw new Error(
      `the allocator benches need --allow-${
        missing.join(", --allow-")
      }: run \`deno bench -A\` or \`deno task bench\``,
    );
  }
}
