/**
 * The migration benchmark's lpm side: a toucher pod on node-a, a
 * PodMigration to node-b, its timings and the downtime's breakdown read from
 * the PodMigration, its ContainerCheckpoints and the restored container's
 * CRIU restore.log on node-b; the agents' and controller's peak RSS.
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import type { LpmClient } from "../kube/lpm_client.ts";
import type { ContainerCheckpoint, PodCheckpoint, PodMigration } from "../api/mod.ts";
import { ctr, type EnvironmentInfo, waitFor } from "../localenv/mod.ts";
import { createMigration } from "../testing/e2e.ts";
import { memoryToucherCommand, toucherReady } from "../testing/memory_toucher.ts";
import { criuLogSpan, downtimeBreakdown, type MigrationTimes } from "./_breakdown.ts";
import type { LpmRun, Mode } from "./_migration_report.ts";

/** What the benchmark's rounds share. */
export interface BenchCtx {
  /** The environment. */
  env: EnvironmentInfo;
  /** Clients. */
  core: k8s.CoreV1Api;
  /** lpm objects. */
  lpm: LpmClient;
  /** The benchmark's namespace. */
  ns: string;
  /** The toucher's image. */
  image: string;
  /** The toucher's binary on the host (the floor). */
  toucherBin: string;
  /** Where the floor writes its images. */
  floorDir: string;
  /** Progress. */
  say(msg: string): void;
  /** Set to the controller's message once it refuses spec.preCopy. */
  preCopyUnsupported?: string;
}

/** One migration to run. */
export interface MigrationRequest {
  /** Workload memory, MiB. */
  sizeMiB: number;
  /** Dirty rate, % of pages per second. */
  dirty: number;
  /** Mode. */
  mode: Mode;
  /** Round (names). */
  round: number;
  /** spec.preCopy.rounds for mode pre-copy. */
  preCopyRounds?: number;
}

/** The benchmark's classes: plain, and the same with spec.encryption (bench/migration.ts). */
export const CLASS = "bench-minio";
/** The encrypting class (`--encrypted`). */
export const ENCRYPTED_CLASS = "bench-minio-encrypted";

async function startToucherPod(ctx: BenchCtx, pod: string, q: MigrationRequest): Promise<void> {
  await ctx.core.createNamespacedPod({
    namespace: ctx.ns,
    body: {
      metadata: { name: pod },
      spec: {
        nodeSelector: { "kubernetes.io/hostname": ctx.env.nodes![0].name },
        automountServiceAccountToken: false,
        containers: [{
          name: "toucher",
          image: ctx.image,
          command: memoryToucherCommand(q.sizeMiB, q.dirty),
        }],
      },
    },
  });
  await waitFor(async () => {
    const log = await ctx.core.readNamespacedPodLog({ name: pod, namespace: ctx.ns })
      .catch(() => "");
    return toucherReady(String(log));
  }, { what: `pod "${pod}" to fill its memory`, timeoutMs: 180_000, intervalMs: 250 });
  await new Promise((r) => setTimeout(r, 1000)); // let it dirty pages, as the floor's does
}

const ms = (iso?: string) => (iso ? Date.parse(iso) : undefined);
const maxOf = (xs: (number | undefined)[]) => {
  const ok = xs.filter((x): x is number => x !== undefined && !Number.isNaN(x));
  return ok.length ? Math.max(...ok) : undefined;
};

/** The restored container's CRIU restore span, from its restore.log on the target node. */
async function restoreSpan(ctx: BenchCtx, pm: PodMigration) {
  const node = ctx.env.nodes!.find((n) => n.name === pm.status?.targetNode);
  const pod = await ctx.core.readNamespacedPod({
    name: pm.status!.restoredPodName!,
    namespace: ctx.ns,
  });
  const id = pod.status?.containerStatuses?.[0]?.containerID?.replace(/^containerd:\/\//, "");
  if (!node || !id) return undefined;
  const log = `${node.containerdRoot}/io.containerd.runtime.v2.task/k8s.io/${id}/restore.log`;
  try {
    const [text, st] = await Promise.all([Deno.readTextFile(log), Deno.stat(log)]);
    return criuLogSpan(text, st.mtime!.getTime());
  } catch {
    return undefined;
  }
}

/** The timestamps of a finished migration the breakdown needs. */
async function migrationTimes(ctx: BenchCtx, pm: PodMigration): Promise<MigrationTimes> {
  const s = pm.status!;
  const pc = await ctx.lpm.get<PodCheckpoint>("podcheckpoints", ctx.ns, s.podCheckpointRef!.name);
  const ccs = await Promise.all(
    (pc?.status?.containers ?? []).map((c) =>
      ctx.lpm.get<ContainerCheckpoint>("containercheckpoints", ctx.ns, c.containerCheckpointName)
    ),
  );
  const phase = (p: string) =>
    ms(s.phaseTransitionTimestamps?.find((t) => t.phase === p)?.phaseTransitionTimestamp);
  const criuDumpUs = maxOf(ccs.map((c) => c?.status?.criuStats?.frozenTimeUs));
  return {
    frozenAt: ms(s.frozenAt)!,
    runningAt: ms(s.restoredRunningAt)!,
    dumpedAt: maxOf(ccs.map((c) => ms(c?.status?.checkpointTime))),
    criuDumpMs: criuDumpUs !== undefined ? criuDumpUs / 1000 : undefined,
    storedAt: maxOf(ccs.map((c) => ms(c?.status?.completionTime))),
    transferringAt: phase("Transferring"),
    restoringAt: phase("Restoring"),
    criuRestore: await restoreSpan(ctx, pm),
  };
}

/**
 * Runs one migration of a fresh toucher pod; undefined when it is a
 * pre-copy run the controller does not implement (recorded in `ctx`).
 */
export async function lpmMigration(
  ctx: BenchCtx,
  q: MigrationRequest,
): Promise<LpmRun | undefined> {
  const tag = { "stop-and-copy": "sc", "pre-copy": "pc", encrypted: "en" }[q.mode];
  const name = `t${q.sizeMiB}-${tag}-${q.round}`;
  await startToucherPod(ctx, name, q);
  try {
    await createMigration(ctx.lpm, { namespace: ctx.ns, name }, {
      pod: name,
      target: ctx.env.nodes![1].name,
      storageClassName: q.mode === "encrypted" ? ENCRYPTED_CLASS : CLASS,
      extra: q.mode === "pre-copy" ? { preCopy: { rounds: q.preCopyRounds ?? 3 } } : {},
    });
    const pm = await waitFor(async () => {
      const p = await ctx.lpm.get<PodMigration>("podmigrations", ctx.ns, name);
      const ph = p?.status?.phase;
      return ph === "Succeeded" || ph === "Failed" ? p : undefined;
    }, { what: `PodMigration "${name}" to finish`, timeoutMs: 600_000, intervalMs: 250 });
    if (pm.status?.phase === "Failed") {
      const msg = pm.status.message ?? "no message";
      if (q.mode === "pre-copy" && /not implemented/i.test(msg)) {
        ctx.preCopyUnsupported = `the controller failed spec.preCopy: ${msg}`;
        ctx.say(ctx.preCopyUnsupported);
        return undefined;
      }
      throw new Error(`PodMigration "${name}" failed: ${msg}`);
    }
    const t = pm.status!.timings ?? {};
    return {
      mode: q.mode,
      downtimeS: (t.downtimeMs ?? NaN) / 1000,
      totalS: (t.totalMs ?? NaN) / 1000,
      steps: downtimeBreakdown(await migrationTimes(ctx, pm)),
    };
  } finally {
    await cleanUp(ctx, name);
  }
}

async function cleanUp(ctx: BenchCtx, name: string): Promise<void> {
  const pm = await ctx.lpm.get<PodMigration>("podmigrations", ctx.ns, name).catch(() => undefined);
  const pods = [name, pm?.status?.restoredPodName].filter((p): p is string => !!p);
  await ctx.lpm.delete("podmigrations", ctx.ns, name).catch(() => {});
  for (const p of pods) {
    await ctx.core.deleteNamespacedPod({ name: p, namespace: ctx.ns, gracePeriodSeconds: 0 })
      .catch(() => {});
  }
  await waitFor(async () => {
    const left = await ctx.core.listNamespacedPod({ namespace: ctx.ns });
    return left.items.length === 0;
  }, { what: `the pods of "${name}" to go`, timeoutMs: 120_000 }).catch(() => {});
  await dropCheckpointImages(ctx);
}

/**
 * Removes the checkpoint images the target node pulled (content and
 * snapshots go with them): a 1 GiB migration leaves ~2 GiB there, and the
 * kubelet's image GC is off in the local environment, so a long run would
 * fill the disk the environment shares with the machine.
 */
async function dropCheckpointImages(ctx: BenchCtx): Promise<void> {
  const socket = ctx.env.nodes![1].containerdSocket;
  const refs = (await ctr(socket, ["images", "ls", "-q"]).catch(() => "")).split("\n")
    .filter((r) => /\/lpm\/bench(-encrypted)?[@:]/.test(r));
  if (refs.length) await ctr(socket, ["images", "rm", ...refs]).catch(() => {});
}

/** Peak RSS (VmHWM) of the agents and the controller, MiB. */
export function peakRssMiB(env: EnvironmentInfo): { name: string; mib: number }[] {
  const procs = [
    ...(env.lpm?.agents ?? []).map((a) => ({ name: `agent ${a.node}`, pid: a.pid })),
    ...(env.lpm?.controller ? [{ name: "controller", pid: env.lpm.controller.pid }] : []),
  ];
  return procs.map(({ name, pid }) => {
    try {
      const status = Deno.readTextFileSync(`/proc/${pid}/status`);
      const kb = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
      return { name, mib: kb / 1024 };
    } catch {
      return { name, mib: NaN };
    }
  });
}
