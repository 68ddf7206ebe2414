/**
 * How a test reaches the environment started by `deno task test`
 * (tests/run.ts), or by a running `deno task cluster:up`, and how a test
 * says that it needs real parts at all.
 *
 * A test that needs more than the Deno process registers with
 * {@linkcode envTest} and names what it needs. `deno task test:unit` sets
 * `LPM_UNIT_ONLY=1`, and only then are such tests skipped (reported as
 * ignored). In every other mode (`deno task test`, `.ci/run`, a plain
 * `deno test`) they run, and a missing environment or part fails them.
 * @module
 */
import type { EnvironmentInfo, Part } from "../localenv/info.ts";

const REPO_ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** The variable `deno task test:unit` sets; nothing else should. */
export const UNIT_ONLY_VAR = "LPM_UNIT_ONLY";

let cached: EnvironmentInfo | undefined;

/**
 * The running environment's description. Throws a message that says how to
 * start one when none runs.
 */
export function testEnv(): EnvironmentInfo {
  if (cached) return cached;
  if (unitOnly()) {
    // A test got here without registering through envTest: say so rather
    // than let the unit run depend on whatever environment happens to run.
    throw new Error(
      `A unit-only run (${UNIT_ONLY_VAR}=1) reached the test environment: ` +
        `register this test with envTest() and name the parts it needs`,
    );
  }
  const path = Deno.env.get("LPM_TEST_ENV") ?? `${REPO_ROOT}/.lpm/env.json`;
  try {
    cached = JSON.parse(Deno.readTextFileSync(path)) as EnvironmentInfo;
  } catch {
    throw new Error(
      `No test environment at "${path}": run the tests with "deno task test", ` +
        `or start one with "deno task cluster:up"`,
    );
  }
  return cached;
}

/** The environment's part `name`, or an error naming the missing part. */
export function requirePart<K extends Part>(name: K): NonNullable<EnvironmentInfo[K]> {
  const v = testEnv()[name];
  if (!v) throw new Error(`The test environment does not run "${name}"; it is required here`);
  return v as NonNullable<EnvironmentInfo[K]>;
}

/** A real part a test needs: a service of the environment, real nodes, or lpm itself. */
export type EnvPart = Part | "nodes" | "lpm";

/** What a test needs beyond the Deno process; at least one field is set. */
export interface Needs {
  /** Parts of the shared environment (`deno task test`, `cluster:up`) the test uses; checked before it runs. */
  uses?: readonly EnvPart[];
  /** Real parts the test starts itself (a private environment: binaries, root), not the shared one. */
  starts?: readonly EnvPart[];
  /** Why the test is too heavy for the unit run though it needs no part (e.g. GiBs on disk). */
  heavy?: string;
}

/** True only under `deno task test:unit` (`LPM_UNIT_ONLY=1`). */
export function unitOnly(): boolean {
  return Deno.env.get(UNIT_ONLY_VAR) === "1";
}

/** The parts of `uses` the running environment lacks (all of them when none runs: `testEnv` throws). */
export function missingParts(info: EnvironmentInfo, uses: readonly EnvPart[]): EnvPart[] {
  return uses.filter((p) => {
    if (p === "nodes") return !info.nodes?.length;
    if (p === "lpm") return !info.lpm;
    return !info[p];
  });
}

/**
 * The test definition `envTest` registers: ignored in unit-only mode,
 * otherwise run after checking that the environment has every part of
 * `needs.uses` (a clear failure naming what is missing).
 */
export function envTestDefinition(
  needs: Needs,
  def: Deno.TestDefinition,
  opts: { unitOnly?: boolean } = {},
): Deno.TestDefinition {
  const what = [
    ...(needs.uses?.length ? [`uses ${needs.uses.join(", ")}`] : []),
    ...(needs.starts?.length ? [`starts ${needs.starts.join(", ")}`] : []),
    ...(needs.heavy ? [`heavy: ${needs.heavy}`] : []),
  ];
  if (!what.length) throw new Error(`Test "${def.name}" registers with envTest but needs nothing`);
  const skip = opts.unitOnly ?? unitOnly();
  const fn = def.fn;
  return {
    ...def,
    ignore: skip || (def.ignore ?? false),
    fn: async (t) => {
      if (needs.uses?.length) {
        const missing = missingParts(testEnv(), needs.uses);
        if (missing.length) {
          throw new Error(
            `The test environment does not run ${missing.map((p) => `"${p}"`).join(", ")}; ` +
              `"${def.name}" needs ${what.join("; ")}`,
          );
        }
      }
      await fn(t);
    },
  };
}

type TestFn = Deno.TestDefinition["fn"];
type TestOptions = Omit<Deno.TestDefinition, "name" | "fn">;

/** `Deno.test`'s three forms. */
export interface Register {
  /** A test from its definition. */
  (def: Deno.TestDefinition): void;
  /** A test from its name and body. */
  (name: string, fn: TestFn): void;
  /** A test from its name, options and body. */
  (name: string, options: TestOptions, fn: TestFn): void;
}

/**
 * Registers a test that needs real parts (see {@linkcode Needs}), in any of
 * `Deno.test`'s forms after `needs`. Skipped only by `deno task test:unit`;
 * everywhere else a missing part fails it.
 */
export function envTest(needs: Needs, def: Deno.TestDefinition): void;
/** Same, with the name and body as arguments. */
export function envTest(needs: Needs, name: string, fn: TestFn): void;
/** Same, with the name, options and body as arguments. */
export function envTest(needs: Needs, name: string, options: TestOptions, fn: TestFn): void;
export function envTest(needs: Needs, ...args: Parameters<typeof toDefinition>): void {
  Deno.test(envTestDefinition(needs, toDefinition(...args)));
}

/**
 * A `Deno.test` for tests that all have the same needs, for files whose
 * registrations read best unchanged: `const kubeTest = needing({ uses: ["kube"] })`,
 * then `kubeTest("name", fn)`.
 */
export function needing(needs: Needs): Register {
  return ((...args: Parameters<typeof toDefinition>) =>
    Deno.test(envTestDefinition(needs, toDefinition(...args)))) as Register;
}

function toDefinition(
  defOrName: Deno.TestDefinition | string,
  fnOrOptions?: TestFn | TestOptions,
  fn?: TestFn,
): Deno.TestDefinition {
  if (typeof defOrName !== "string") return defOrName;
  if (typeof fnOrOptions === "function") return { name: defOrName, fn: fnOrOptions };
  return { ...fnOrOptions, name: defOrName, fn: fn! };
}
