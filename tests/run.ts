/**
 * `deno task test`: starts the whole local environment (every part is
 * required: if one cannot start, the run fails), runs every test with it,
 * stops it, and ends with the plain line `N passed, N failed, N skipped`.
 *
 *   deno task test                 all tests
 *   deno task test storage/ oci/   only these paths (the environment still starts)
 * @module
 */
import { type Environment, startEnvironment } from "../localenv/environment.ts";

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

async function main(): Promise<number> {
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
  const paths = Deno.args.length ? Deno.args : ["."];
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", ...paths],
    cwd: REPO_ROOT,
    env: { LPM_TEST_ENV: preset ?? `${env!.info.dir}/info.json`, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let out = "";
  const dec = new TextDecoder();
  for await (const chunk of child.stdout) {
    const s = dec.decode(chunk, { stream: true });
    out += s;
    await Deno.stdout.write(chunk);
  }
  const status = await child.status;
  await stopEnv();
  const sum = parseSummary(out);
  if (!sum) {
    console.log(`0 passed, 1 failed, 0 skipped`);
    say("ERROR: no test summary from deno test");
    return status.code || 1;
  }
  console.log(`${sum.passed} passed, ${sum.failed} failed, ${sum.skipped} skipped`);
  return status.code;
}

if (import.meta.main) Deno.exit(await main());
