/**
 * `deno task test`: starts the whole local environment (every part is
 * required: if one cannot start, the run fails), runs every test with it,
 * stops it, and ends with the plain line `N passed, N failed, N skipped`.
 *
 *   deno task test                 all tests
 *   deno task test storage/ oci/   only these paths (the environment still starts)
 *   deno task test:unit [paths]    no environment: tests that need real parts
 *                                  (testing/env.ts envTest) are skipped
 * @module
 */
import { type Environment, startEnvironment } from "../localenv/environment.ts";
import { UNIT_ONLY_VAR } from "../testing/env.ts";

const REPO_ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

function say(msg: string): void {
  console.error(`[lpm test] ${msg}`);
}

/** Parses Deno's closing summary line (ANSI stripped) into counts. */
export function parseSummary(
  text: string,
): { passed: number; failed: number; skipped: number } | undefined {
  // deno-lint-ignore no-control-regex
  const plain = text.replace(/\x1b\[[0-9;]*m/g, "");
  const re =
    /(?:ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed(?: \(\d+ steps?\))?(?: \| (\d+) ignored)?/g;
  let m: RegExpExecArray | null;
  let last: RegExpExecArray | null = null;
  while ((m = re.exec(plain))) last = m;
  if (!last) return undefined;
  return { passed: Number(last[1]), failed: Number(last[2]), skipped: Number(last[3] ?? 0) };
}

/** `deno task test:unit`: every test that needs no environment, none started. */
async function unitMain(paths: string[]): Promise<number> {
  // Unit tests share no environment, so files may run side by side.
  const { code, out } = await runDenoTest(["--parallel", ...paths], {
    [UNIT_ONLY_VAR]: "1",
    NO_COLOR: "1",
  });
  return report(code, out);
}

/** Runs `deno test -A args` with `env` added, echoing its output; returns its status and stdout. */
async function runDenoTest(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; out: string }> {
  const paths = args.filter((a) => !a.startsWith("-"));
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", ...args, ...(paths.length ? [] : ["."])],
    cwd: REPO_ROOT,
    env,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let out = "";
  const dec = new TextDecoder();
  for await (const chunk of child.stdout) {
    out += dec.decode(chunk, { stream: true });
    await Deno.stdout.write(chunk);
  }
  return { code: (await child.status).code, out };
}

/** Prints the plain count line from deno test's output and returns the exit code. */
function report(code: number, out: string): number {
  const sum = parseSummary(out);
  if (!sum) {
    console.log(`0 passed, 1 failed, 0 skipped`);
    say("ERROR: no test summary from deno test");
    return code || 1;
  }
  console.log(`${sum.passed} passed, ${sum.failed} failed, ${sum.skipped} skipped`);
  return code;
}

async function main(): Promise<number> {
  if (Deno.args[0] === "--unit") return await unitMain(Deno.args.slice(1));
  let env: Environment | undefined;
  const preset = Deno.env.get("LPM_TEST_ENV");
  if (!preset) {
    const t0 = Date.now();
    say(
      "starting the local environment (kube, minio, registry, docker, 2 nodes, lpm agents + controller)",
    );
    try {
      env = await startEnvironment({ onProgress: say, nodes: 2, lpm: true });
    } catch (err) {
      say(`ERROR: the environment did not start, so no test ran: ${(err as Error).message}`);
      console.log("0 passed, 1 failed, 0 skipped");
      return 1;
    }
    say(`environment up in ${((Date.now() - t0) / 1000).toFixed(1)} s (logs: ${env.info.logDir})`);
  }
  const stopEnv = async () => {
    if (env) {
      say("stopping the environment");
      await env.stop();
      env = undefined;
    }
  };
  const onSignal = () => {
    stopEnv().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  // Every part is required here: a unit-only setting inherited from the
  // shell must not turn the environment's tests into skips.
  const { code, out } = await runDenoTest(Deno.args, {
    LPM_TEST_ENV: preset ?? `${env!.info.dir}/info.json`,
    [UNIT_ONLY_VAR]: "",
    NO_COLOR: "1",
  });
  await stopEnv();
  return report(code, out);
}

if (import.meta.main) Deno.exit(await main());
