/**
 * One batch of `deno task bench controller`: create PodMigrations at once,
 * wait until every one has ended and let go of its finalizer, and read what
 * the controller spent on them from its metrics and /proc.
 * @module
 */
import type { LpmClient } from "../kube/lpm_client.ts";
import type { PodMigration } from "../api/mod.ts";
import {
  type BatchResult,
  counts,
  memMiB,
  perMigration,
  sampleQueue,
  scrape,
} from "./_controller_probe.ts";

/** Runs `fn` over `items`, at most `limit` at a time. */
export async function pool<T>(items: T[], limit: number, fn: (t: T) => Promise<void>) {
  const queue = [...items];
  const worker = async () => {
    for (let t = queue.shift(); t !== undefined; t = queue.shift()) await fn(t);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** One migration to create. */
export interface Move {
  name: string;
  pod: string;
  target: string;
}

/** Where the batch runs and whose controller answers for it. */
export interface BatchTarget {
  lpm: LpmClient;
  ns: string;
  storageClassName: string;
  controller: { pid: number; healthPort: number };
  /** Give up after this long. */
  timeoutMs: number;
}

const terminal = (pm: PodMigration) =>
  pm.status?.phase === "Succeeded" || pm.status?.phase === "Failed";

/** Creates `moves` at once and waits for all of them to end (and their finalizers to go). */
export async function runBatch(
  label: string,
  moves: Move[],
  t: BatchTarget,
): Promise<BatchResult & { failures: string[] }> {
  const names = new Set(moves.map((m) => m.name));
  const before = counts(await scrape(t.controller.healthPort));
  const sampler = sampleQueue(t.controller.healthPort, t.controller.pid);
  const t0 = performance.now();
  await pool(moves, 20, (m) =>
    t.lpm.create("podmigrations", t.ns, {
      apiVersion: "lpm.my.domain/v1",
      kind: "PodMigration",
      metadata: { name: m.name, namespace: t.ns },
      spec: {
        podName: m.pod,
        targetNode: m.target,
        storageClassName: t.storageClassName,
        // The default 600 s counts the time a migration waits for a slot: a burst of 200
        // behind 5 slots on a loaded machine fails by timeout while still Pending.
        timeoutSeconds: 3600,
      },
    }).then(() => {}));
  let mine: PodMigration[] = [];
  let wallS = 0;
  while (performance.now() - t0 < t.timeoutMs) {
    await new Promise((r) => setTimeout(r, 1000));
    mine = (await t.lpm.list<PodMigration>("podmigrations", t.ns))
      .filter((pm) => names.has(pm.metadata!.name!));
    if (!wallS && mine.length === moves.length && mine.every(terminal)) {
      wallS = (performance.now() - t0) / 1000;
    }
    if (wallS && mine.every((pm) => !pm.metadata?.finalizers?.length)) break;
  }
  const series = sampler.stop();
  const after = counts(await scrape(t.controller.healthPort));
  const failed = mine.filter((pm) => pm.status?.phase === "Failed");
  return {
    label,
    n: moves.length,
    succeeded: mine.filter((pm) => pm.status?.phase === "Succeeded").length,
    failed: failed.length,
    failures: failed.slice(0, 3).map((pm) => `${pm.metadata!.name}: ${pm.status?.message}`),
    wallS: wallS || (performance.now() - t0) / 1000,
    peakRssMiB: memMiB(t.controller.pid, "VmHWM"),
    per: perMigration(before, after, moves.length),
    ...series,
  };
}
