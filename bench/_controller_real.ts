/**
 * `deno task bench controller --real N / --soak N`: migrations on the real
 * nodes of a local environment (kubelet + containerd, CRIU, the agents and
 * the controller as host processes, MinIO, the registry).
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import "../kube/http1.ts";
import type { EnvironmentInfo } from "../localenv/mod.ts";
import { createMinioClass, createNamespace, waitFor } from "../localenv/mod.ts";
import { LpmClient } from "../kube/lpm_client.ts";
import type { ContainerCheckpoint, PodMigration } from "../api/mod.ts";
import { counterCommand, counterValues } from "../testing/workloads.ts";
import { createMigration, deleteNamespaceAndWait, minioClient } from "../testing/e2e.ts";
import { type Counts, memMiB, printBatch, scrape } from "./_controller_probe.ts";
import { pool, runBatch } from "./_controller_batch.ts";
import { growthPercent, highWaterGrowth } from "./_controller_stats.ts";

interface Real {
  info: EnvironmentInfo;
  core: k8s.CoreV1Api;
  lpm: LpmClient;
  ns: string;
  nodeA: string;
  nodeB: string;
}

async function open(info: EnvironmentInfo, prefix: string, cls: string, spec = {}): Promise<Real> {
  if (!info.lpm || (info.nodes?.length ?? 0) < 2 || !info.minio || !info.registry) {
    throw new Error("the real runs need 2 nodes, lpm, MinIO and the registry");
  }
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(info.kube!.kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const lpm = new LpmClient(kc);
  await createMinioClass(core, lpm, {
    name: cls,
    minio: info.minio,
    prefix: `${cls}/`,
    repository: `${info.registry.host}/lpm/${cls}`,
    reuse: true,
    spec,
  });
  const ns = `${prefix}-${crypto.randomUUID().slice(0, 6)}`;
  await createNamespace(core, ns);
  return { info, core, lpm, ns, nodeA: info.nodes![0].name, nodeB: info.nodes![1].name };
}

/** A small counter pod (`intervalS` between lines) on `node`. */
async function counter(r: Real, name: string, node: string, intervalS: number): Promise<void> {
  await r.core.createNamespacedPod({
    namespace: r.ns,
    body: {
      metadata: { name, labels: { app: "bench" } },
      spec: {
        nodeName: node,
        terminationGracePeriodSeconds: 0,
        containers: [{
          name: "counter",
          image: r.info.nodeImages!.busybox,
          command: counterCommand(intervalS),
          resources: { requests: { cpu: "5m", memory: "4Mi" }, limits: { memory: "32Mi" } },
        }],
      },
    },
  });
}

async function running(r: Real, name: string, timeoutMs = 180_000): Promise<void> {
  await waitFor(async () => {
    const p = await r.core.readNamespacedPod({ name, namespace: r.ns }).catch(() => undefined);
    return p?.status?.phase === "Running";
  }, { what: `pod "${name}" to run`, timeoutMs, intervalMs: 500 });
}

/** `n` counter pods on node-a migrated to node-b at once, after 1 single migration (the baseline). */
export async function runReal(info: EnvironmentInfo, n: number): Promise<void> {
  const r = await open(info, "bench-real", "bench-real");
  const target = {
    lpm: r.lpm,
    ns: r.ns,
    storageClassName: "bench-real",
    controller: info.lpm!.controller,
    timeoutMs: 30 * 60_000,
  };
  try {
    await counter(r, "single", r.nodeA, 1);
    await running(r, "single");
    const one = await runBatch(
      "single",
      [{ name: "single", pod: "single", target: r.nodeB }],
      target,
    );
    if (one.failed) throw new Error(`the single migration failed: ${one.failures.join("; ")}`);
    const baseline: Counts[] = [one.per];
    const names = Array.from({ length: n }, (_, i) => `c-${i}`);
    console.error(`[bench] real: ${n} counter pods on ${r.nodeA}`);
    await pool(names, 5, (p) => counter(r, p, r.nodeA, 1));
    await pool(names, 5, (p) => running(r, p));
    console.error(`[bench] real: ${n} PodMigrations ${r.nodeA} -> ${r.nodeB} at once`);
    const res = await runBatch(
      "real nodes",
      names.map((p) => ({ name: `m-${p}`, pod: p, target: r.nodeB })),
      target,
    );
    printBatch(res, baseline);
    for (const f of res.failures) console.log(`  failed: ${f}`);
  } finally {
    await deleteNamespaceAndWait(r.core, r.ns);
  }
}

/** One hop's record. */
interface Hop {
  at: number;
  next: number;
  totalMs: number;
  downtimeMs: number;
  rss: number[];
  /** The controller's V8 heap, used and total, MiB (lpm_process_memory_bytes, up to 5 s old). */
  heap: [number, number];
  cc?: { id: string; reference: string; completion: number };
}

/** The controller's heap used and total in MiB, from its metrics (NaN when it has none). */
async function controllerHeap(port: number): Promise<[number, number]> {
  const samples = await scrape(port).catch(() => []);
  const of = (kind: string) =>
    (samples.find((x) => x.name === "lpm_process_memory_bytes" && x.labels.kind === kind)
      ?.value ?? NaN) / 2 ** 20;
  return [of("heap_used"), of("heap_total")];
}

/** Migrates `pod` to `to`, checks the count goes on, and samples RSS (controller, agents). */
async function hop(
  r: Real,
  i: number,
  pod: string,
  to: string,
  ttl?: number,
): Promise<Hop & { pod: string }> {
  const name = `hop-${i}`;
  await createMigration(r.lpm, { namespace: r.ns, name }, {
    pod,
    target: to,
    storageClassName: "bench-soak",
    extra: ttl === undefined ? undefined : { ttlSecondsAfterFinished: ttl },
  });
  const pm = await waitFor(async () => {
    const pm = await r.lpm.get<PodMigration>("podmigrations", r.ns, name);
    return pm?.status?.phase === "Succeeded" || pm?.status?.phase === "Failed" ? pm : undefined;
  }, { what: `PodMigration "${name}" to finish`, timeoutMs: 300_000, intervalMs: 250 });
  if (pm.status?.phase !== "Succeeded") throw new Error(`hop ${i} failed: ${pm.status?.message}`);
  const restored = pm.status.restoredPodName!;
  await running(r, restored);
  // The checkpointed log is replayed first on restore; new values follow it.
  const replayed = await counterValues(r.core, r.ns, restored);
  await new Promise((res) => setTimeout(res, 1500));
  const all = await counterValues(r.core, r.ns, restored);
  const cc = (await r.lpm.list<ContainerCheckpoint>("containercheckpoints", r.ns))
    .find((c) => c.metadata?.ownerReferences?.some((o) => o.name === name));
  const lpm = r.info.lpm!;
  return {
    pod: restored,
    at: replayed.at(-1) ?? 0,
    next: all[replayed.length] ?? -1,
    totalMs: pm.status.timings?.totalMs ?? 0,
    downtimeMs: pm.status.timings?.downtimeMs ?? 0,
    rss: [lpm.controller.pid, ...lpm.agents.map((a) => a.pid)].map((p) => memMiB(p, "VmRSS")),
    heap: await controllerHeap(lpm.controller.healthPort),
    cc: cc?.status?.archive && cc.status.image
      ? {
        id: cc.status.archive.key.split("/")[2],
        reference: cc.status.image.reference,
        completion: Date.parse(cc.status.completionTime ?? ""),
      }
      : undefined,
  };
}

/**
 * One counter pod migrated back and forth `hops` times; with `ttl`, each
 * PodMigration has that `spec.ttlSecondsAfterFinished` (so the objects the
 * controller caches stop piling up), else all stay.
 */
export async function runSoak(info: EnvironmentInfo, hops: number, ttl?: number): Promise<void> {
  const r = await open(info, "bench-soak", "bench-soak", { retention: { maxAge: "2m" } });
  const done: Hop[] = [];
  try {
    await counter(r, "counter", r.nodeA, 0.3);
    await running(r, "counter");
    await waitFor(async () => (await counterValues(r.core, r.ns, "counter")).length >= 5, {
      what: "the counter to count",
    });
    let pod = "counter";
    const t0 = performance.now();
    for (let i = 1; i <= hops; i++) {
      const to = i % 2 ? r.nodeB : r.nodeA;
      const h = await hop(r, i, pod, to, ttl);
      const prev = done.at(-1)?.at ?? 0;
      const ok = h.next === h.at + 1 && h.at > prev;
      console.log(
        `  hop ${
          String(i).padStart(2)
        } -> ${to}: total ${h.totalMs} ms, downtime ${h.downtimeMs} ms, ` +
          `count ${h.at} -> ${h.next} ${ok ? "ok" : "BROKEN"}; RSS MiB controller/agents ` +
          h.rss.map((x) => x.toFixed(0)).join("/") +
          `; controller heap used/total ${h.heap.map((x) => x.toFixed(0)).join("/")}`,
      );
      if (!ok) {
        throw new Error(`hop ${i}: the count did not continue (${prev} .. ${h.at} -> ${h.next})`);
      }
      done.push(h);
      pod = h.pod;
    }
    const wall = (performance.now() - t0) / 1000;
    console.log(`soak: ${done.length} hops in ${wall.toFixed(0)} s, every hop continued the count`);
    printGrowth(info, done);
    await checkRetention(r, done);
  } finally {
    await deleteNamespaceAndWait(r.core, r.ns);
  }
}

function printGrowth(info: EnvironmentInfo, done: Hop[]): void {
  const who = ["controller", ...info.lpm!.agents.map((a) => `agent ${a.node}`)];
  who.forEach((w, k) => {
    const xs = done.map((h) => h.rss[k]);
    const g = growthPercent(xs, 5);
    const pct = (p: number) => `${p >= 0 ? "+" : ""}${p.toFixed(1)} %`;
    console.log(
      `  RSS ${w.padEnd(16)} first 5 hops ${g.first.toFixed(1)} MiB, last 5 ${
        g.last.toFixed(1)
      } MiB (medians): ${pct(g.percent)} (target <= 10 %)`,
    );
    const hw = highWaterGrowth(xs, 10);
    if (k === 0) {
      const used = growthPercent(done.map((h) => h.heap[0]), 5);
      console.log(
        `      ${"".padEnd(16)} V8 heap used, first 5 hops ${used.first.toFixed(1)} MiB, ` +
          `last 5 ${used.last.toFixed(1)} MiB: ${pct(used.percent)}`,
      );
    }
    console.log(
      `      ${"".padEnd(16)} high-water of the first 10 hops ${hw.first.toFixed(1)} MiB, ` +
        `of the last 10 ${hw.last.toFixed(1)} MiB: ${pct(hw.percent)}`,
    );
  });
}

/**
 * After the retention pass that followed the last hop: no checkpoint that
 * completed more than maxAge (2m) before that pass has objects in MinIO or
 * its manifest in the registry.
 */
async function checkRetention(r: Real, done: Hop[]): Promise<void> {
  const lastCompletion = Math.max(...done.map((h) => h.cc?.completion ?? 0));
  const cls = await waitFor(async () => {
    const c = await r.lpm.get<{ status?: { retention?: { lastRunTime?: string } } }>(
      "checkpointstorageclasses",
      "",
      "bench-soak",
    );
    const last = Date.parse(c?.status?.retention?.lastRunTime ?? "");
    return last > lastCompletion ? last : undefined;
  }, { what: "a retention pass after the last hop", timeoutMs: 120_000 });
  const minio = minioClient(r.info.minio!);
  const names: string[] = [];
  for await (const o of minio.listObjectsV2(r.info.minio!.bucket, "bench-soak/", true)) {
    if ((o as { name?: string }).name?.includes(`/${r.ns}/`)) {
      names.push((o as { name: string }).name);
    }
  }
  let expired = 0, expiredData = 0, expiredImages = 0, kept = 0;
  for (const h of done) {
    if (!h.cc) continue;
    const hasData = names.some((n) => n.includes(`/${h.cc!.id}/`));
    if (h.cc.completion < cls - 120_000) {
      expired++;
      if (hasData) expiredData++;
      const [repo, digest] = h.cc.reference.split("@");
      const slash = repo.indexOf("/");
      const res = await fetch(
        `http://${repo.slice(0, slash)}/v2/${repo.slice(slash + 1)}/manifests/${digest}`,
        { method: "HEAD", headers: { accept: "application/vnd.oci.image.manifest.v1+json" } },
      );
      await res.body?.cancel();
      if (res.status !== 404) expiredImages++;
    } else if (hasData) kept++;
  }
  console.log(
    `  retention (maxAge 2m), pass at ${new Date(cls).toISOString()}: ${expired} checkpoints ` +
      `older than maxAge: ${expiredData} still with data in MinIO, ${expiredImages} still with ` +
      `a manifest in the registry; ${kept} newer ones kept; ${names.length} objects in MinIO`,
  );
}
