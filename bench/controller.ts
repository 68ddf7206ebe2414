/**
 * `deno task bench controller [--count 200] [--real 20] [--soak 0] [--ttl S] [--env <env.json>]
 * [--v8-flags <flags of the scripted controller; default controllers/v8_flags.ts, "none": V8's>]`:
 * the controller under load.
 *
 * - `--count N` (scripted): the controller (bench/_scripted_controller.ts,
 *   a process of its own) against a real API server with the scripted agent;
 *   the bench plays the kubelet of 10 fake nodes (heartbeats, pods Running).
 *   First 3 single migrations one after the other (the baseline), then N
 *   PodMigrations created at once, 20 source pods per node, each to the next
 *   node: the per-migration costs of the batch are printed beside the
 *   baseline's (min/median/max) as ratios.
 * - `--real N`: N small counter pods on node-a of a real two-node
 *   environment (kubelet + containerd, the agents, the controller as the
 *   environment runs it) migrated to node-b at once.
 * - `--soak N`: one counter pod migrated node-a <-> node-b N times; each hop
 *   must continue the count; the controller's and agents' RSS per hop, the
 *   growth from the first 5 hops to the last 5; at the end no checkpoint
 *   older than the class's retention (maxAge 2m) has data in MinIO or a
 *   manifest in the registry. `--ttl S`: each hop's PodMigration has
 *   `spec.ttlSecondsAfterFinished: S` (unset: all 50 stay, and with them
 *   their objects in the controller's caches).
 *
 * Each run prints: Succeeded/Failed, wall time, the controller's peak RSS
 * (VmHWM of its process), API requests per migration (its
 * `lpm_api_requests_total`), reconciles per migration
 * (`lpm_controller_reconcile_total`) and the PodMigration queue depth
 * (`lpm_workqueue_depth`) sampled every second. The migration limits are
 * the controller's defaults (5 in the cluster, 2 leaving a node).
 * `--real` and `--soak` start a private environment with 2 nodes unless
 * `--env` names a running one (`deno task cluster:up --nodes 2 --with-lpm`).
 * @module
 */
import { parseArgs } from "../base/args.ts";
import type { EnvironmentInfo } from "../localenv/mod.ts";
import { startEnvironment } from "../localenv/mod.ts";
import { runScripted } from "./_controller_scripted.ts";
import { runReal, runSoak } from "./_controller_real.ts";
import { CONTROLLER_V8_FLAGS } from "../controllers/v8_flags.ts";

/** Runs the benchmark and prints its figures. */
export async function main(args: string[]): Promise<void> {
  const { flags } = parseArgs(args, { known: ["count", "real", "soak", "ttl", "env", "v8-flags"] });
  const num = (f: string, d: number) => {
    const v = Number(flags[f] ?? d);
    if (!Number.isInteger(v) || v < 0) {
      throw new Error(`--${f} must be a whole number, not "${flags[f]}"`);
    }
    return v;
  };
  const count = num("count", 200);
  const real = num("real", 20);
  const soak = num("soak", 0);
  const ttl = flags.ttl === undefined ? undefined : num("ttl", 0);
  // The scripted controller runs with the flags the controller ships with; "none": V8's defaults.
  const v8 = flags["v8-flags"] ?? CONTROLLER_V8_FLAGS;
  if (count > 0) await runScripted(count, v8 === "none" ? undefined : v8);
  if (real === 0 && soak === 0) return;
  let info: EnvironmentInfo;
  let stop = () => Promise.resolve();
  if (flags.env) {
    info = JSON.parse(await Deno.readTextFile(flags.env));
  } else {
    const env = await startEnvironment({
      parts: ["kube", "minio", "registry"],
      nodes: 2,
      lpm: true,
      onProgress: (m) => console.error(`[bench] ${m}`),
    });
    info = env.info;
    stop = env.stop;
  }
  try {
    if (real > 0) await runReal(info, real);
    if (soak > 0) await runSoak(info, soak, ttl);
  } finally {
    await stop();
  }
}

if (import.meta.main) await main(Deno.args);
