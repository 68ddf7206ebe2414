/**
 * Issue 18 on the real nodes: a migration without a target node, the
 * migration limits, eviction that becomes migration, and `kubectl drain`.
 */
import "../kube/http1.ts";
import { assert, assertEquals } from "@std/assert";
import { openTwoNodeWorkspace, type TwoNodeWorkspace } from "../testing/e2e.ts";
import { envTest, testEnv } from "../testing/env.ts";
import { counterCommand, counterValues } from "../testing/workloads.ts";
import { waitFor } from "../localenv/mod.ts";
import type { PodMigration } from "../api/mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const CLASS = "e2e-minio";
const USES = { uses: ["kube", "minio", "registry", "nodes", "lpm"] as const };

type Ctx = TwoNodeWorkspace;

function setup(): Promise<Ctx> {
  return openTwoNodeWorkspace(testEnv(), "drain", CLASS);
}

/** A counter pod on node-a (bare, as drain's --force takes it), opted in or not. */
async function counterPod(c: Ctx, name: string, optIn: boolean): Promise<void> {
  await c.core.createNamespacedPod({
    namespace: c.ns,
    body: {
      metadata: {
        name,
        labels: { app: name },
        ...(optIn ? { annotations: { "lpm.my.domain/eviction-strategy": "LiveMigrate" } } : {}),
      },
      spec: {
        nodeName: c.nodeA,
        terminationGracePeriodSeconds: 1,
        containers: [{ name: "counter", image: c.image, command: counterCommand(0.3) }],
      },
    },
  });
}

async function counting(c: Ctx, pod: string): Promise<void> {
  await waitFor(async () => {
    const p = await c.core.readNamespacedPod({ name: pod, namespace: c.ns });
    if (p.status?.phase !== "Running") return false;
    return ((await counterValues(c.core, c.ns, pod)).at(-1) ?? 0) >= 3;
  }, { what: `pod "${pod}" to count`, timeoutMs: 90_000 });
}

async function finished(c: Ctx, name: string, timeoutMs = 180_000): Promise<PodMigration> {
  return await waitFor(async () => {
    const pm = await c.lpm.get<PodMigration>("podmigrations", c.ns, name);
    return pm?.status?.phase === "Succeeded" || pm?.status?.phase === "Failed" ? pm : undefined;
  }, { what: `PodMigration "${name}" to finish`, timeoutMs, intervalMs: 250 });
}

/** The restored counter goes on from the checkpoint: no gap, no repeat. */
async function continues(c: Ctx, restored: string): Promise<void> {
  const replayed = await counterValues(c.core, c.ns, restored);
  await new Promise((r) => setTimeout(r, 1500));
  const all = await counterValues(c.core, c.ns, restored);
  for (let i = 1; i < all.length; i++) {
    assertEquals(all[i], all[i - 1] + 1, `pod "${restored}": ${all.slice(i - 2, i + 2)}`);
  }
  assert(all.length > replayed.length, `pod "${restored}" prints new values`);
}

envTest(USES, {
  name: "drain: a PodMigration without targetNode chooses node-b and shows it in the status",
  ...opts,
  async fn() {
    const c = await setup();
    try {
      await counterPod(c, "untargeted", false);
      await counting(c, "untargeted");
      await c.lpm.create("podmigrations", c.ns, {
        apiVersion: "lpm.my.domain/v1",
        kind: "PodMigration",
        metadata: { name: "untargeted", namespace: c.ns },
        spec: { podName: "untargeted", storageClassName: CLASS },
      });
      const pm = await finished(c, "untargeted");
      assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
      assertEquals(pm.spec.targetNode, undefined);
      assertEquals(pm.status?.targetNode, c.nodeB);
      const p = await c.core.readNamespacedPod({
        name: pm.status!.restoredPodName!,
        namespace: c.ns,
      });
      assertEquals(p.spec?.nodeName, c.nodeB);
      await continues(c, pm.status!.restoredPodName!);
    } finally {
      await c.core.deleteNamespace({ name: c.ns }).catch(() => {});
    }
  },
});

/** The controller's limit from its /metrics (lpm_podmigration_limit). */
async function outboundLimit(): Promise<number> {
  const port = testEnv().lpm!.controller.healthPort;
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = /lpm_podmigration_limit\{limit="outbound_per_node"\} (\d+)/.exec(text);
  assert(m, "the controller reports its outbound limit");
  return Number(m[1]);
}

/** Polls the migrations until all end; the most that ran at once from `node`, and who waited. */
async function watchLimit(
  c: Ctx,
  names: string[],
  node: string,
): Promise<{ most: number; waited: Set<string>; done: PodMigration[] }> {
  let most = 0;
  const waited = new Set<string>();
  const done = await waitFor(async () => {
    const pms = await Promise.all(
      names.map((n) => c.lpm.get<PodMigration>("podmigrations", c.ns, n)),
    );
    const running = pms.filter((m) =>
      ["Checkpointing", "Transferring", "Restoring"].includes(m?.status?.phase ?? "") &&
      m?.status?.sourceNode === node
    );
    most = Math.max(most, running.length);
    for (const m of pms) {
      if (m?.status?.conditions?.some((x) => x.reason === "WaitingForMigrationSlot")) {
        waited.add(m.metadata!.name!);
      }
    }
    const ended = pms.every((m) => ["Succeeded", "Failed"].includes(m?.status?.phase ?? ""));
    return ended ? pms as PodMigration[] : undefined;
  }, { what: "the migrations to end", timeoutMs: 300_000, intervalMs: 100 });
  return { most, waited, done };
}

envTest(USES, {
  name: "drain: three untargeted migrations off node-a respect the outbound limit and all land",
  ...opts,
  async fn() {
    const limit = await outboundLimit();
    const c = await setup();
    try {
      const names = ["limited-1", "limited-2", "limited-3"];
      for (const n of names) await counterPod(c, n, false);
      for (const n of names) await counting(c, n);
      for (const n of names) {
        await c.lpm.create("podmigrations", c.ns, {
          apiVersion: "lpm.my.domain/v1",
          kind: "PodMigration",
          metadata: { name: n, namespace: c.ns },
          spec: { podName: n, storageClassName: CLASS },
        });
      }
      const { most, waited, done } = await watchLimit(c, names, c.nodeA);
      for (const pm of done) {
        assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
        assertEquals(pm.status?.targetNode, c.nodeB);
        await continues(c, pm.status!.restoredPodName!);
      }
      console.log(`outbound limit ${limit}: at most ${most} ran at once; waited: ${[...waited]}`);
      assert(most <= limit, `at most ${limit} migration(s) leave node-a at once, saw ${most}`);
      if (limit < names.length) assert(waited.size > 0, "some migration waited for a slot");
    } finally {
      await c.core.deleteNamespace({ name: c.ns }).catch(() => {});
    }
  },
});

/** Runs `deno task drain <node>`; its output and wall time. */
async function drainCli(node: string): Promise<{ code: number; out: string; ms: number }> {
  const start = Date.now();
  const root = new URL("../", import.meta.url).pathname;
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${root}cli/drain.ts`,
      node,
      `--storage-class=${CLASS}`,
      `--kubeconfig=${testEnv().kube!.kubeconfig}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
  return { code: r.code, out, ms: Date.now() - start };
}

envTest(USES, {
  name:
    "drain: deno task drain moves three opted-in counters to node-b with no gap and evicts the ordinary pod",
  ...opts,
  async fn() {
    const c = await setup();
    const names = ["opted-1", "opted-2", "opted-3"];
    try {
      for (const n of names) await counterPod(c, n, true);
      await counterPod(c, "ordinary", false);
      for (const n of [...names, "ordinary"]) await counting(c, n);
      const r = await drainCli(c.nodeA);
      console.log(r.out);
      assertEquals(r.code, 0, r.out);
      console.log(`drain wall time for three counters: ${(r.ms / 1000).toFixed(1)} s`);
      const pods = (await c.core.listNamespacedPod({ namespace: c.ns })).items
        .filter((p) => !p.metadata?.deletionTimestamp);
      assert(!pods.some((p) => p.metadata?.name === "ordinary"), "the ordinary pod was evicted");
      const pms = await c.lpm.list<PodMigration>("podmigrations", c.ns);
      assertEquals(pms.length, 3);
      for (const pm of pms) {
        assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
        assertEquals(pm.status?.targetNode, c.nodeB);
        const p = pods.find((x) => x.metadata?.name === pm.status?.restoredPodName);
        assertEquals(p?.spec?.nodeName, c.nodeB);
        await continues(c, pm.status!.restoredPodName!);
      }
    } finally {
      await c.core.patchNode(
        { name: c.nodeA, body: { spec: { unschedulable: false } } },
        (await import("@kubernetes/client-node")).setHeaderOptions(
          "Content-Type",
          (await import("@kubernetes/client-node")).PatchStrategy.MergePatch,
        ),
      ).catch(() => {});
      await c.core.deleteNamespace({ name: c.ns }).catch(() => {});
    }
  },
});
