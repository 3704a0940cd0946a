/** The policy switch: HZ_POLICY, open({ policy }), and a second policy. */
import assert from "node:assert/strict";
import { open, POLICIES, PolicyError } from "../../mod.ts";
import { expectExit, fixture, runDeno } from "./helpers.ts";

const PERMISSIONS = ["--allow-ffi", "--allow-env", "--allow-read"];

async function policyOf(args: string[], env: Record<string, string> = {}) {
  const unset = "HZ_POLICY" in env ? [] : ["HZ_POLICY"];
  const permissions = args[0] === "--unknown" ? ["--allow-all"] : PERMISSIONS;
  const output = await runDeno(permissions, fixture("policy.ts"), args, {
    env,
    unset,
  });
  return JSON.parse(expectExit(output, 0).stdout);
}

Deno.test("HZ_POLICY=scale in the environment is the lane taken", async () => {
  const seen = await policyOf([], { HZ_POLICY: "scale" });
  assert.deepEqual(seen, { policy: "scale", env: "scale" });
});

Deno.test("without HZ_POLICY the library runs balanced", async () => {
  assert.equal((await policyOf([])).policy, "balanced");
});

Deno.test("open({ policy }) loads each lane, and leaves HZ_POLICY as it was", async (t) => {
  for (const policy of POLICIES) {
    await t.step(policy, async () => {
      assert.deepEqual(await policyOf([policy]), {
        policy,
        env: null,
      });
    });
  }
  await t.step("over a different HZ_POLICY", async () => {
    const seen = await policyOf(["compact"], { HZ_POLICY: "scale" });
    assert.deepEqual(seen, { policy: "compact", env: "scale" });
  });
});

Deno.test("an unknown policy is an ArgumentError before the library loads", async () => {
  const seen = await policyOf(["--unknown"]);
  assert.match(seen.error, /^ArgumentError: hakozuna: unknown policy "turbo"/);
  assert.equal(seen.loaded, false);
});

Deno.test("a second policy in one process is refused with a PolicyError", () => {
  using hz = open();
  const before = Deno.env.get("HZ_POLICY");
  const other = POLICIES.find((policy) => policy !== hz.policy)!;
  assert.throws(
    () => open({ policy: other }),
    (error: Error) =>
      error instanceof PolicyError && error.loaded === hz.policy &&
      error.message.includes(`with policy "${hz.policy}"`) &&
      error.message.includes(`HZ_POLICY=${other}`),
  );
  assert.equal(Deno.env.get("HZ_POLICY"), before, "HZ_POLICY restored");
  using same = open({ policy: hz.policy });
  assert.equal(same.policy, hz.policy);
});
