/**
 * The unit-only switch: `envTest` tests are skipped with `LPM_UNIT_ONLY=1`
 * and nowhere else, where a missing environment fails them.
 */
import { assert, assertEquals, assertRejects, assertStringIncludes } from "@std/assert";
import { envTestDefinition, missingParts, UNIT_ONLY_VAR } from "./env.ts";
import type { EnvironmentInfo } from "../localenv/info.ts";
import { parseSummary } from "../tests/run.ts";

const ENV_TS = new URL("./env.ts", import.meta.url).href;

Deno.test("envTestDefinition: ignored in unit-only mode, run otherwise", () => {
  const def = { name: "x", fn: () => {} };
  assertEquals(envTestDefinition({ uses: ["kube"] }, def, { unitOnly: true }).ignore, true);
  assertEquals(envTestDefinition({ uses: ["kube"] }, def, { unitOnly: false }).ignore, false);
  assertEquals(envTestDefinition({ starts: ["kube"] }, def, { unitOnly: false }).ignore, false);
  const ignored = { ...def, ignore: true };
  assertEquals(envTestDefinition({ heavy: "big" }, ignored, { unitOnly: false }).ignore, true);
});

Deno.test("envTestDefinition: a test that declares nothing is refused", () => {
  let err: Error | undefined;
  try {
    envTestDefinition({}, { name: "empty", fn: () => {} }, { unitOnly: false });
  } catch (e) {
    err = e as Error;
  }
  assertStringIncludes(err?.message ?? "", `"empty" registers with envTest but needs nothing`);
});

Deno.test("envTestDefinition: a missing part fails the test before its body runs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lpm-env-test-" });
  let ran = false;
  try {
    const info = { dir, logDir: dir, parts: ["kube"], pids: [], extraDirs: [] };
    assertEquals(missingParts(info as unknown as EnvironmentInfo, ["kube", "nodes", "lpm"]), [
      "kube",
      "nodes",
      "lpm",
    ]);
    const def = envTestDefinition(
      { uses: ["minio"] },
      { name: "needs minio", fn: () => void (ran = true) },
      { unitOnly: false },
    );
    // No environment at all in this process's view: the body never runs.
    const prev = Deno.env.get("LPM_TEST_ENV");
    Deno.env.set("LPM_TEST_ENV", `${dir}/absent.json`);
    try {
      const err = await assertRejects(async () => await def.fn({} as Deno.TestContext));
      assert(
        /No test environment at|does not run "minio"|unit-only run/.test((err as Error).message),
        (err as Error).message,
      );
    } finally {
      if (prev === undefined) Deno.env.delete("LPM_TEST_ENV");
      else Deno.env.set("LPM_TEST_ENV", prev);
    }
    assertEquals(ran, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Runs `deno test` on a file with one envTest and one plain test, with `extra` env. */
async function runFixture(extra: Record<string, string>) {
  const dir = await Deno.makeTempDir({ prefix: "lpm-env-mode-" });
  try {
    await Deno.writeTextFile(
      `${dir}/fixture_test.ts`,
      `import { envTest } from "${ENV_TS}";\n` +
        `envTest({ uses: ["kube"] }, "needs kube", () => {});\n` +
        `Deno.test("plain", () => {});\n`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["test", "-A", "--no-check", `${dir}/fixture_test.ts`],
      env: { LPM_TEST_ENV: `${dir}/no-env.json`, NO_COLOR: "1", ...extra },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    return { code: out.code, text, sum: parseSummary(text) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "unit-only mode: LPM_UNIT_ONLY=1 skips an envTest, any other value makes it fail",
  sanitizeResources: false,
  async fn() {
    const unit = await runFixture({ [UNIT_ONLY_VAR]: "1" });
    assertEquals(unit.sum, { passed: 1, failed: 0, skipped: 1 }, unit.text);
    assertEquals(unit.code, 0);
    for (const value of ["", "0", "true"]) {
      const full = await runFixture({ [UNIT_ONLY_VAR]: value });
      assertEquals(full.sum, { passed: 1, failed: 1, skipped: 0 }, full.text);
      assertStringIncludes(full.text, "No test environment at");
      assert(full.code !== 0);
    }
  },
});
