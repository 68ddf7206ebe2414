/**
 * The Go prototype's manifests apply unchanged and work, on the real parts.
 *
 * The PodMigration is the one in the original project's README
 * (`../shared/original-project-readme.md`, "Basic Workflow"), applied with
 * kubectl as YAML text with only its pod and node names filled in. The
 * README shows no PodCheckpoint or ContainerCheckpoint; their minimal forms
 * are the specs the original project documents for them (its technical
 * overview: `PodCheckpoint {podName}`, `ContainerCheckpoint {podName,
 * containerName}`). None of the three names a storage class: each uses the
 * cluster's default class, which this test makes.
 */
import type * as k8s from "@kubernetes/client-node";
import "../kube/http1.ts";
import type * as Minio from "minio";
import { assert, assertEquals } from "@std/assert";
import { deleteNamespaceAndWait, kubeClients, minioClient } from "../testing/e2e.ts";
import { envTest, requirePart, testEnv } from "../testing/env.ts";
import { counterCommand, counterValues as podCounterValues } from "../testing/workloads.ts";
import { createMinioClass, createNamespace, kubectl, waitFor } from "../localenv/mod.ts";
import type { LpmClient } from "../kube/lpm_client.ts";
import type { MinioInfo } from "../localenv/mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** The README's PodMigration, as printed there. */
const README_MIGRATION = `apiVersion: lpm.my.domain/v1
kind: PodMigration
metadata:
  name: my-migration
spec:
  podName: my-app-pod
  targetNode: target-node-name
`;

const ORIGINAL_POD_CHECKPOINT = `apiVersion: lpm.my.domain/v1
kind: PodCheckpoint
metadata:
  name: test-checkpoint
spec:
  podName: my-app-pod
`;

const ORIGINAL_CONTAINER_CHECKPOINT = `apiVersion: lpm.my.domain/v1
kind: ContainerCheckpoint
metadata:
  name: test-container-checkpoint
spec:
  podName: my-app-pod
  containerName: counter
`;

function counterValues(core: k8s.CoreV1Api, ns: string, pod: string): Promise<number[]> {
  return podCounterValues(core, ns, pod, { container: "counter" });
}

/** The counter's values with the time the kubelet logged each. */
async function timedValues(
  core: k8s.CoreV1Api,
  ns: string,
  pod: string,
): Promise<{ at: number; value: number }[]> {
  const log = await core.readNamespacedPodLog({
    name: pod,
    namespace: ns,
    container: "counter",
    timestamps: true,
  });
  return String(log).split("\n").map((l) => l.trim().split(" ")).filter((p) =>
    p.length === 2 && /^\d+$/.test(p[1])
  ).map(([ts, v]) => ({ at: new Date(ts).getTime(), value: Number(v) }));
}

/** What the test's steps share: clients, names, and a few verbs over them. */
interface Ctx {
  busybox: string;
  core: k8s.CoreV1Api;
  lpm: LpmClient;
  minio: MinioInfo;
  mc: Minio.Client;
  id: string;
  ns: string;
  cls: string;
  prefix: string;
  nodeA: string;
  nodeB: string;
  /** Object names under `p` in the bucket. */
  listed(p: string): Promise<string[]>;
  /** `kubectl apply` of YAML text in the namespace. */
  apply(yaml: string): Promise<unknown>;
  /** Waits for an lpm object to succeed (fails at once if it fails). */
  succeeded(plural: string, name: string): Promise<unknown>;
}

async function setUp(): Promise<Ctx> {
  const env = testEnv();
  const kube = requirePart("kube");
  const minio = requirePart("minio");
  if ((env.nodes?.length ?? 0) < 2 || !env.lpm) {
    throw new Error('This test needs 2 nodes and lpm in the environment: run "deno task test"');
  }
  const { core, lpm } = kubeClients(kube.kubeconfig);
  const id = crypto.randomUUID().slice(0, 6);
  const ns = `orig-${id}`;
  const mc = minioClient(minio);
  const listed = async (p: string) => {
    const names: string[] = [];
    for await (const o of mc.listObjectsV2(minio.bucket, p, true)) {
      if ((o as { name?: string }).name) names.push((o as { name: string }).name);
    }
    return names;
  };
  await createNamespace(core, ns);
  const apply = (yaml: string) => kubectl(kube.kubeconfig, ["-n", ns, "apply", "-f", "-"], yaml);
  const phase = async (plural: string, name: string) =>
    (await lpm.get<{ status?: { phase?: string; message?: string } }>(
      plural as "podcheckpoints",
      ns,
      name,
    ))?.status;
  const succeeded = (plural: string, name: string) =>
    waitFor(async () => {
      const s = await phase(plural, name);
      if (s?.phase === "Failed") throw new Error(`${plural}/${name} failed: ${s.message}`);
      return s?.phase === "Succeeded";
    }, { what: `${plural}/${name} to succeed`, timeoutMs: 120_000 });
  return {
    busybox: env.nodeImages!.busybox,
    core,
    lpm,
    minio,
    mc,
    id,
    ns,
    cls: `orig-${id}`,
    prefix: `orig-${id}/`,
    nodeA: env.nodes![0].name,
    nodeB: env.nodes![1].name,
    listed,
    apply,
    succeeded,
  };
}

/** The cluster's default class, and the README's pod counting on node-a. */
async function startCounter({ core, lpm, minio, id, ns, cls, prefix, nodeA, busybox }: Ctx) {
  await createMinioClass(core, lpm, {
    name: cls,
    minio,
    prefix,
    repository: `${requirePart("registry").host}/lpm/orig-${id}`,
    spec: { default: true },
  });
  await core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name: "my-app-pod" },
      spec: {
        nodeName: nodeA,
        containers: [{
          name: "counter",
          image: busybox,
          command: counterCommand(0.3),
        }],
      },
    },
  });
  await waitFor(async () => (await counterValues(core, ns, "my-app-pod")).length >= 3, {
    what: "the counter to count",
    timeoutMs: 60_000,
  });
}

/** The original PodCheckpoint and ContainerCheckpoint succeed; the standalone one's data goes with it. */
async function checkpointBoth({ core, lpm, ns, prefix, listed, apply, succeeded }: Ctx) {
  await apply(ORIGINAL_POD_CHECKPOINT);
  await succeeded("podcheckpoints", "test-checkpoint");
  await apply(ORIGINAL_CONTAINER_CHECKPOINT);
  await succeeded("containercheckpoints", "test-container-checkpoint");
  const pod = await core.readNamespacedPod({ name: "my-app-pod", namespace: ns });
  assertEquals(pod.status?.phase, "Running", "both checkpoints leave the pod running");
  // A standalone ContainerCheckpoint's data goes with it (the class's deletionPolicy is Delete).
  const cc = (await lpm.get("containercheckpoints", ns, "test-container-checkpoint"))!;
  const ccPrefix = `${prefix}${ns}/my-app-pod/${cc.metadata!.uid}/`;
  assert((await listed(ccPrefix)).length >= 2, `archive and metadata under "${ccPrefix}"`);
  await lpm.delete("containercheckpoints", ns, "test-container-checkpoint");
  await waitFor(
    async () => !(await lpm.get("containercheckpoints", ns, "test-container-checkpoint")),
    {
      what: "the standalone ContainerCheckpoint to go (its finalizer removes its data)",
      timeoutMs: 30_000,
    },
  );
  assertEquals(await listed(ccPrefix), [], "its archive and metadata are gone from MinIO");
}

/** The README's PodMigration moves the pod to node-b with the default class; the count goes on. */
async function migrateAsReadme({ core, lpm, ns, cls, nodeB, apply, succeeded }: Ctx) {
  const before = (await counterValues(core, ns, "my-app-pod")).length;
  await apply(README_MIGRATION.replace("target-node-name", nodeB));
  await succeeded("podmigrations", "my-migration");
  const pm = await lpm.get<{ status: { restoredPodName: string; storageClassName: string } }>(
    "podmigrations",
    ns,
    "my-migration",
  );
  assertEquals(pm!.status.storageClassName, cls, "the default class was used");
  const restored = await core.readNamespacedPod({
    name: pm!.status.restoredPodName,
    namespace: ns,
  });
  assertEquals(restored.spec?.nodeName, nodeB);
  // The restored log replays the checkpointed one, then goes on: one run of 1, 2, 3...
  // whose values printed after the restored pod was made continue the source's count.
  const made = new Date(restored.metadata!.creationTimestamp!).getTime();
  const after = await waitFor(async () => {
    const lines = await timedValues(core, ns, pm!.status.restoredPodName);
    return lines.filter((l) => l.at > made).length >= 3 ? lines : undefined;
  }, { what: "the restored counter to go on", timeoutMs: 30_000 });
  const values = after.map((l) => l.value);
  assertEquals(values, values.map((_, i) => i + 1), "one count, never restarted");
  const firstNew = after.find((l) => l.at > made)!.value;
  assert(firstNew >= before, `the restored count goes on (${firstNew}), not from 1`);
}

/** Removes the namespace (waiting for it), what the test left in the class's prefix, and the class. */
async function cleanUp({ core, lpm, mc, minio, ns, cls, prefix, listed }: Ctx) {
  await deleteNamespaceAndWait(core, ns);
  // Whatever the test left in the class's prefix.
  const names = await listed(prefix).catch(() => []);
  if (names.length) await mc.removeObjects(minio.bucket, names);
  await lpm.delete("checkpointstorageclasses", "", cls);
  await core.deleteNamespacedSecret({ name: cls, namespace: "lpm-system" }).catch(() => {});
}

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name: "original manifests: the prototype's PodCheckpoint, ContainerCheckpoint and README " +
    "PodMigration apply unchanged; both checkpoints succeed and the pod migrates, its count going on",
  ...opts,
  async fn() {
    const ctx = await setUp();
    try {
      await startCounter(ctx);
      await checkpointBoth(ctx);
      await migrateAsReadme(ctx);
    } finally {
      await cleanUp(ctx);
    }
  },
});
