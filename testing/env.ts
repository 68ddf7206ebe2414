/**
 * How a test reaches the environment started by `deno task test`
 * (tests/run.ts), or by a running `deno task cluster:up`.
 * @module
 */
import type { EnvironmentInfo } from "../localenv/info.ts";

const REPO_ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

let cached: EnvironmentInfo | undefined;

/**
 * The running environment's description. Throws a message that says how to
 * start one when none runs.
 */
export function testEnv(): EnvironmentInfo {
  if (cached) return cached;
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
export function requirePart<K extends "kube" | "minio" | "registry" | "docker">(
  name: K,
): NonNullable<EnvironmentInfo[K]> {
  const v = testEnv()[name];
  if (!v) throw new Error(`The test environment does not run "${name}"; it is required here`);
  return v as NonNullable<EnvironmentInfo[K]>;
}
