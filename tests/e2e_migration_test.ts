/**
 * End to end on the real local cluster: two real nodes (kubelet +
 * containerd + CRIU), an lpm agent on each and the controller, all started by
 * `deno task test`. Running pods move from node-a to node-b with
 * PodMigrations and keep their state.
 */
import type * as k8s from "@kubernetes/client-node";
import "../kube/http1.ts";
import { sha256Hex } from "../base/sha256.ts";
import { assert, assertEquals, assertGreater, assertStringIncludes } from "@std/assert";
import { createMigration, openWorkspace } from "../testing/e2e.ts";
import { envTest, requirePart, testEnv } from "../testing/env.ts";
import { counterCommand, counterValues, pinnedReplicas } from "../testing/workloads.ts";
import { waitFor } from "../localenv/mod.ts";
import type { LpmClient } from "../kube/lpm_client.ts";
import type { ContainerCheckpoint, PodMigration } from "../api/mod.ts";
import { createStore } from "../storage/mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const CLASS = "e2e-minio";

interface Ctx {
  core: k8s.CoreV1Api;
  apps: k8s.AppsV1Api;
  lpm: LpmClient;
  ns: string;
  image: string;
  nodeA: string;
  nodeB: string;
}

function counterCmd(prefix = ""): string[] {
  return counterCommand(0.3, prefix);
}

async function setup(): Promise<Ctx> {
  const env = testEnv();
  if ((env.nodes?.length ?? 0) < 2 || !env.lpm) {
    throw new Error(
      `These tests need 2 nodes and lpm (agents + controller) in the environment; it has ${
        env.nodes?.length ?? 0
      } ` +
        `node(s) and lpm ${env.lpm ? "running" : "absent"}: run them with "deno task test"`,
    );
  }
  const { core, apps, lpm, ns } = await openWorkspace(env, {
    ns: `e2e-${crypto.randomUUID().slice(0, 6)}`,
    storageClass: { name: CLASS, prefix: "e2e/", repository: "lpm/e2e", reuse: true },
  });
  return {
    core,
    apps,
    lpm,
    ns,
    image: env.nodeImages!.busybox,
    nodeA: env.nodes![0].name,
    nodeB: env.nodes![1].name,
  };
}

function values(c: Ctx, pod: string, container: string, prefix = ""): Promise<number[]> {
  return counterValues(c.core, c.ns, pod, { container, prefix });
}

async function runningOn(c: Ctx, pod: string): Promise<k8s.V1Pod> {
  return await waitFor(async () => {
    const p = await c.core.readNamespacedPod({ name: pod, namespace: c.ns });
    return p.status?.phase === "Running" ? p : undefined;
  }, { what: `pod "${pod}" to run`, timeoutMs: 60_000 });
}

async function migrate(
  c: Ctx,
  name: string,
  pod: string,
  extra: Record<string, unknown> = {},
): Promise<PodMigration> {
  await createMigration(c.lpm, { namespace: c.ns, name }, {
    pod,
    target: c.nodeB,
    storageClassName: CLASS,
    extra,
  });
  return await waitFor(async () => {
    const pm = await c.lpm.get<PodMigration>("podmigrations", c.ns, name);
    return pm?.status?.phase === "Succeeded" || pm?.status?.phase === "Failed" ? pm : undefined;
  }, { what: `PodMigration "${name}" to finish`, timeoutMs: 120_000, intervalMs: 250 });
}

/** The checkpointed log is replayed first on restore; new values follow it. */
async function continuation(
  c: Ctx,
  restored: string,
  container: string,
  prefix = "",
): Promise<{ at: number; next: number[] }> {
  const replayed = await values(c, restored, container, prefix);
  await new Promise((r) => setTimeout(r, 1500));
  const all = await values(c, restored, container, prefix);
  const at = replayed.at(-1) ?? 0;
  return { at, next: all.slice(replayed.length) };
}

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name:
    "e2e: a counter pod moves node-a -> node-b and keeps counting; its archive in MinIO has the digest recorded",
  ...opts,
  async fn() {
    const c = await setup();
    try {
      await c.core.createNamespacedPod({
        namespace: c.ns,
        body: {
          metadata: { name: "counter", labels: { app: "counter" } },
          spec: {
            nodeName: c.nodeA,
            containers: [{ name: "counter", image: c.image, command: counterCmd() }],
          },
        },
      });
      await runningOn(c, "counter");
      await waitFor(async () => ((await values(c, "counter", "counter")).at(-1) ?? 0) >= 5, {
        what: "counting",
      });
      const pm = await migrate(c, "move", "counter");
      assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
      const restored = pm.status!.restoredPodName!;
      const p = await runningOn(c, restored);
      assertEquals(p.spec?.nodeName, c.nodeB);
      const { at, next } = await continuation(c, restored, "counter");
      assertGreater(at, 1, "the checkpoint carried the count");
      assert(next.length > 0, "the restored counter prints new values");
      assertEquals(
        next[0],
        at + 1,
        `counting continues from the checkpoint: at ${at}, then ${next}`,
      );
      for (let i = 1; i < next.length; i++) assertEquals(next[i], next[i - 1] + 1);
      const t = pm.status?.timings;
      assert(
        t?.downtimeMs !== undefined && t.totalMs !== undefined && t.checkpointMs !== undefined,
      );
      console.log(`timings: ${JSON.stringify(t)}`);
      // The stored archive: read it back from MinIO and hash it ourselves.
      const cc = await c.lpm.get<ContainerCheckpoint>("containercheckpoints", c.ns, "move-counter");
      const archive = cc!.status!.archive!;
      const m = requirePart("minio");
      const store = createStore(
        {
          provider: "minio",
          minio: { endpoint: m.endpoint, bucket: m.bucket, prefix: "e2e/" },
          credentialsSecretRef: { name: CLASS, namespace: "lpm-system" },
        },
        { secret: { accessKeyId: m.accessKey, secretAccessKey: m.secretKey } },
      );
      try {
        const bytes = new Uint8Array(
          await new Response(await store.get(archive.key)).arrayBuffer(),
        );
        const digest = sha256Hex(bytes);
        assertEquals(bytes.length, archive.size);
        assertEquals(digest, archive.sha256);
      } finally {
        store.close?.();
      }
      assertStringIncludes(cc!.status!.image!.reference, "@sha256:");
      const src = await c.core.readNamespacedPod({ name: "counter", namespace: c.ns }).catch(() =>
        undefined
      );
      assert(!src || src.metadata?.deletionTimestamp, "the source pod is deleted");
    } finally {
      await c.core.deleteNamespace({ name: c.ns }).catch(() => {});
    }
  },
});

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name: "e2e: a two-container pod moves and both containers keep counting",
  ...opts,
  async fn() {
    const c = await setup();
    try {
      await c.core.createNamespacedPod({
        namespace: c.ns,
        body: {
          metadata: { name: "duo" },
          spec: {
            nodeName: c.nodeA,
            containers: [
              { name: "left", image: c.image, command: counterCmd("L") },
              { name: "right", image: c.image, command: counterCmd("R") },
            ],
          },
        },
      });
      await runningOn(c, "duo");
      await waitFor(async () => ((await values(c, "duo", "right", "R")).at(-1) ?? 0) >= 4, {
        what: "counting",
      });
      const pm = await migrate(c, "move", "duo");
      assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
      const restored = pm.status!.restoredPodName!;
      await runningOn(c, restored);
      for (const [ctr, prefix] of [["left", "L"], ["right", "R"]]) {
        const { at, next } = await continuation(c, restored, ctr, prefix);
        assertGreater(at, 1, `${ctr} carried its count`);
        assertEquals(next[0], at + 1, `${ctr}: at ${at}, then ${next}`);
      }
    } finally {
      await c.core.deleteNamespace({ name: c.ns }).catch(() => {});
    }
  },
});

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name: "e2e: a Deployment's pod moves; the Deployment ends with exactly its replica count",
  ...opts,
  async fn() {
    const c = await setup();
    try {
      await c.apps.createNamespacedDeployment({
        namespace: c.ns,
        body: pinnedReplicas({
          app: "web",
          node: c.nodeA,
          containers: [{ name: "counter", image: c.image, command: counterCmd() }],
        }),
      });
      const src = await waitFor(async () => {
        const l = await c.core.listNamespacedPod({ namespace: c.ns, labelSelector: "app=web" });
        return l.items.find((p) => p.status?.phase === "Running");
      }, { what: "the Deployment's pod to run", timeoutMs: 60_000 });
      await waitFor(
        async () => ((await values(c, src.metadata!.name!, "counter")).at(-1) ?? 0) >= 4,
        { what: "counting" },
      );
      const pm = await migrate(c, "move", src.metadata!.name!);
      assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
      const restored = pm.status!.restoredPodName!;
      await waitFor(async () => {
        const l = await c.core.listNamespacedPod({ namespace: c.ns, labelSelector: "app=web" });
        const live = l.items.filter((p) => !p.metadata?.deletionTimestamp);
        return live.length === 1 && live[0].metadata?.name === restored ? true : undefined;
      }, { what: "exactly the restored pod to serve the Deployment", timeoutMs: 60_000 });
      await new Promise((r) => setTimeout(r, 3000));
      const dep = await c.apps.readNamespacedDeployment({ name: "web", namespace: c.ns });
      assertEquals(dep.status?.replicas, 1);
      const l = await c.core.listNamespacedPod({ namespace: c.ns, labelSelector: "app=web" });
      assertEquals(
        l.items.filter((p) => !p.metadata?.deletionTimestamp).map((p) => p.metadata?.name),
        [restored],
      );
      const { at, next } = await continuation(c, restored, "counter");
      assertEquals(next[0], at + 1, `at ${at}, then ${next}`);
    } finally {
      await c.core.deleteNamespace({ name: c.ns }).catch(() => {});
    }
  },
});

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name:
    "e2e: a migration that fails (registry unreachable) leaves the source pod running and counting",
  ...opts,
  async fn() {
    const c = await setup();
    const bad = `e2e-bad-${c.ns}`;
    try {
      const m = requirePart("minio");
      await c.lpm.create("checkpointstorageclasses", "", {
        apiVersion: "lpm.my.domain/v1",
        kind: "CheckpointStorageClass",
        metadata: { name: bad },
        spec: {
          provider: "minio",
          minio: { endpoint: m.endpoint, bucket: m.bucket, prefix: "e2e-bad/" },
          credentialsSecretRef: { name: CLASS, namespace: "lpm-system" },
          registry: { repository: "127.0.0.1:9/lpm/nowhere", insecure: true },
        },
      });
      await c.core.createNamespacedPod({
        namespace: c.ns,
        body: {
          metadata: { name: "counter" },
          spec: {
            nodeName: c.nodeA,
            containers: [{ name: "counter", image: c.image, command: counterCmd() }],
          },
        },
      });
      await runningOn(c, "counter");
      await waitFor(async () => {
        const cls = await c.lpm.get<{ status?: { phase?: string } }>(
          "checkpointstorageclasses",
          "",
          bad,
        );
        return cls?.status?.phase === "Available";
      }, { what: "the class's storage to validate", timeoutMs: 60_000 });
      const pm = await migrate(c, "move", "counter", { storageClassName: bad });
      assertEquals(pm.status?.phase, "Failed");
      assertStringIncludes(pm.status?.message ?? "", "the source pod goes on");
      const before = (await values(c, "counter", "counter")).at(-1)!;
      await new Promise((r) => setTimeout(r, 1500));
      const src = await c.core.readNamespacedPod({ name: "counter", namespace: c.ns });
      assertEquals(src.status?.phase, "Running");
      assertEquals(src.metadata?.deletionTimestamp, undefined);
      assertGreater(
        (await values(c, "counter", "counter")).at(-1)!,
        before,
        "the source keeps counting",
      );
    } finally {
      await c.core.deleteNamespace({ name: c.ns }).catch(() => {});
      await c.lpm.delete("checkpointstorageclasses", "", bad).catch(() => {});
    }
  },
});
