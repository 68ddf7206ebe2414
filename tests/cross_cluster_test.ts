/**
 * CROSS-CLUSTER E2E (starts its own environments; run with
 * `deno test -A tests/cross_cluster_test.ts`, no `deno task test` needed).
 *
 * Two independent local clusters, one after the other, sharing only a
 * standalone MinIO: cluster A (etcd + API server + one real node + lpm)
 * checkpoints a counter pod into MinIO and is torn down; cluster B (its own
 * etcd, API server, registry, node and lpm) restores the checkpoint from the
 * storage key with a PodRestore, importing it into B's registry, and the pod
 * continues counting. The same checkpoint is restored twice more: from the
 * image B imported (an image source) and from an OCI layout tarball exported
 * from A's registry before A went away (`deno task restore --from
 * oci-archive:...`); both need nothing but the image, which carries the pod
 * spec. Checkpoints whose metadata says arm64, or a newer CRIU than the node's
 * agent reports, are refused with an Incompatible condition.
 */
import * as k8s from "@kubernetes/client-node";
import { envTest } from "../testing/env.ts";
import { counterCommand, counterValues } from "../testing/workloads.ts";
import "../kube/http1.ts";
import { assert, assertEquals, assertGreater, assertMatch } from "@std/assert";
import { type Environment, startEnvironment } from "../localenv/environment.ts";
import { ctr } from "../localenv/containerd.ts";
import { createMinioClass, createNamespace, waitFor } from "../localenv/mod.ts";
import { LpmClient } from "../kube/lpm_client.ts";
import type { ContainerCheckpoint, PodCheckpoint, PodRestore } from "../api/mod.ts";
import { createStore } from "../storage/mod.ts";
import { describeCheckpointImage, pullImage, writeLayoutTarball } from "../oci/mod.ts";

/** The parts of a carried pod spec the test reads. */
type PodRestoreSource = {
  metadata: { labels?: Record<string, string> };
  spec: { containers: { name: string }[] };
};

const opts = { sanitizeOps: false, sanitizeResources: false };
const CLASS = "xc-minio";
const NS = "xc";

interface Cluster {
  env: Environment;
  core: k8s.CoreV1Api;
  lpm: LpmClient;
}

const log = (m: string) => console.error(`[cross-cluster] ${m}`);

async function cluster(minio: NonNullable<Environment["info"]["minio"]>): Promise<Cluster> {
  const env = await startEnvironment({ parts: ["kube", "registry"], nodes: 1, lpm: true });
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(env.info.kube!.kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const lpm = new LpmClient(kc);
  await createNamespace(core, NS);
  await createMinioClass(core, lpm, {
    name: CLASS,
    minio,
    prefix: "xc/",
    repository: `${env.info.registry!.host}/lpm/xc`,
  });
  return { env, core, lpm };
}

function values(c: Cluster, pod: string, container = "app"): Promise<number[]> {
  return counterValues(c.core, NS, pod, { container });
}

async function restore(
  c: Cluster,
  name: string,
  source: PodRestore["spec"]["source"],
): Promise<PodRestore> {
  await c.lpm.create("podrestores", NS, {
    apiVersion: "lpm.my.domain/v1",
    kind: "PodRestore",
    metadata: { name, namespace: NS },
    spec: {
      source,
      nodeName: c.env.info.nodes![0].name,
      labels: { restored: "yes" },
    },
  });
  return await waitFor(async () => {
    const pr = await c.lpm.get<PodRestore>("podrestores", NS, name);
    return pr?.status?.phase === "Succeeded" || pr?.status?.phase === "Failed" ? pr : undefined;
  }, { what: `PodRestore "${name}" to finish`, timeoutMs: 120_000, intervalMs: 500 });
}

/**
 * Asserts that `pod` (restored from a checkpoint taken when the source had
 * printed at least `before`) continues the count: its log replays the
 * checkpointed history, then the values go on from there, never from 1.
 */
async function assertContinues(
  c: Cluster,
  pod: string,
  before: number,
  container = "app",
): Promise<void> {
  // The restored container's log starts with the history replayed from the
  // checkpoint (1..c, c the checkpointed value); new values follow from c+1.
  // A fresh start could not have printed >= 15 values (0.3 s each) this soon.
  const rp = await c.core.readNamespacedPod({ name: pod, namespace: NS });
  const startedAt = rp.status?.containerStatuses?.find((s) => s.name === container)?.state
    ?.running?.startedAt;
  const replayed = await values(c, pod, container);
  const sinceStart = Date.now() - new Date(startedAt ?? Date.now()).getTime();
  await new Promise((r) => setTimeout(r, 1500));
  const all = await values(c, pod, container);
  const at = replayed.at(-1) ?? 0;
  const next = all.slice(replayed.length);
  log(
    `"${pod}/${container}": restored log 1..${at} ${sinceStart} ms after start; new values: ${
      next.slice(0, 5).join(", ")
    }...`,
  );
  assertGreater(at, before - 1, "the restored log must hold the checkpointed history");
  // A process started fresh prints at most one value per 0.3 s.
  assertGreater(at, Math.ceil(sinceStart / 300) + 2, "the counter restarted instead of restoring");
  assert(next.length >= 2, "the restored counter must keep counting");
  assertEquals(next[0], at + 1, "the first new value must continue the count, not restart at 1");
  for (let i = 1; i < next.length; i++) assertEquals(next[i], next[i - 1] + 1);
  // Never restarted: "1" only at the very start of the replayed history. (Around
  // the checkpoint the replayed log may repeat a value or two: the log file is
  // copied after the dump while the source keeps running.)
  assertEquals(all.lastIndexOf(1), 0);
}

/** Runs `deno task restore` (cli/restore.ts) against cluster `c`. */
async function restoreCli(c: Cluster, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../cli/restore.ts", import.meta.url).pathname,
      ...args,
      "--kubeconfig",
      c.env.info.kube!.kubeconfig,
      "--node",
      c.env.info.nodes![0].name,
      "-n",
      NS,
      "--wait",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/** What cluster A leaves behind: where the checkpoint is, and what the source had printed. */
interface Checkpointed {
  /** A value the counter had printed before the checkpoint. */
  before: number;
  /** The busybox image A's pod ran, by name and by the runtime's id. */
  busyboxA: string;
  baseA: string;
  /** The "app" container's archive key, and the pod checkpoint's prefix. */
  key: string;
  prefix: string;
  cc: ContainerCheckpoint;
}

/** A two-container counter in cluster A, checkpointed by a PodCheckpoint into MinIO. */
async function checkpointInA(a: Cluster): Promise<Checkpointed> {
  const busyboxA = a.env.info.nodeImages!.busybox;
  await a.core.createNamespacedPod({
    namespace: NS,
    body: {
      metadata: { name: "counter", labels: { app: "counter" } },
      spec: {
        nodeName: a.env.info.nodes![0].name,
        containers: ["app", "side"].map((name) => ({
          name,
          image: busyboxA,
          command: counterCommand(0.3),
        })),
      },
    },
  });
  await waitFor(async () => (await values(a, "counter").catch(() => [])).length >= 15, {
    what: "the counter to count in cluster A",
    timeoutMs: 60_000,
  });
  const before = Math.max(...await values(a, "counter"));
  const running = await a.core.readNamespacedPod({ name: "counter", namespace: NS });
  const baseA = running.status!.containerStatuses![0].imageID!;
  await a.lpm.create("podcheckpoints", NS, {
    apiVersion: "lpm.my.domain/v1",
    kind: "PodCheckpoint",
    metadata: { name: "cp", namespace: NS },
    spec: { podName: "counter", storageClassName: CLASS },
  } as PodCheckpoint);
  const pc = await waitFor(async () => {
    const p = await a.lpm.get<PodCheckpoint>("podcheckpoints", NS, "cp");
    return p?.status?.phase === "Succeeded" || p?.status?.phase === "Failed" ? p : undefined;
  }, { what: "PodCheckpoint in A", timeoutMs: 120_000, intervalMs: 500 });
  assertEquals(pc.status?.phase, "Succeeded", pc.status?.message);
  const cc = await a.lpm.get<ContainerCheckpoint>(
    "containercheckpoints",
    NS,
    pc.status!.containers!.find((c) => c.name === "app")!.containerCheckpointName,
  );
  const key = cc!.status!.archive!.key;
  // Both containers' checkpoints share one prefix: <ns>/<pod>/<PodCheckpoint uid>/.
  const prefix = key.slice(0, key.lastIndexOf("/") + 1);
  assertEquals(prefix, `${NS}/counter/${pc.metadata!.uid}/`);
  const after = Math.max(...await values(a, "counter"));
  log(`checkpointed at a value in [${before}, ${after}], stored as "${key}"`);
  return { before, busyboxA, baseA, key, prefix, cc: cc! };
}

/**
 * The checkpoint image the agent pushed into A's registry, exported to an
 * OCI layout tarball in `layoutDir` (it outlives A and its registry). It
 * describes itself: container, architecture, CRIU version, pod spec.
 * Returns the tarball's path.
 */
async function exportLayout(cc: ContainerCheckpoint, layoutDir: string): Promise<string> {
  const pulled = await pullImage(cc.status!.image!.reference, `${layoutDir}/dir`, {
    insecure: true,
  });
  const tarball = `${layoutDir}/counter-checkpoint.tar`;
  await writeLayoutTarball(`${layoutDir}/dir`, tarball);
  const described = describeCheckpointImage(pulled.manifest.annotations);
  assertEquals(described.containerName, "app");
  assertEquals(described.architecture, "amd64");
  assertEquals(`${described.namespace}/${described.pod}`, `${NS}/counter`);
  assertMatch(described.runtime.criuVersion ?? "", /^\d+\.\d+/);
  const carried = described.sourcePod as PodRestoreSource;
  assertEquals(carried.spec.containers.map((c) => c.name), ["app", "side"]);
  assertEquals(carried.metadata.labels, { app: "counter" });
  log(`exported "${cc.status!.image!.reference}" to "${tarball}"`);
  return tarball;
}

/**
 * The checkpoint's base image (A's busybox) must be known to B's node: it
 * is the same image, pushed into B's registry; give it A's names there.
 */
async function tagBaseImageInB(b: Cluster, { busyboxA, baseA }: Checkpointed): Promise<void> {
  const node = b.env.info.nodes![0];
  await ctr(node.containerdSocket, [
    "images",
    "pull",
    "--plain-http",
    b.env.info.nodeImages!.busybox,
  ]);
  for (const name of [busyboxA, baseA]) {
    await ctr(node.containerdSocket, ["images", "tag", b.env.info.nodeImages!.busybox, name]);
  }
}

/**
 * A PodRestore from the checkpoint's storage prefix restores every container
 * of the pod in B, importing the image into B's registry; returns that image.
 */
async function restoreFromStorage(b: Cluster, { prefix, before }: Checkpointed): Promise<string> {
  const tR = performance.now();
  const pr = await restore(b, "from-a", { storage: { storageClassName: CLASS, key: prefix } });
  assertEquals(pr.status?.phase, "Succeeded", pr.status?.message);
  log(
    `restored in ${Math.round(performance.now() - tR)} ms as "${pr.status?.restoredPodName}"`,
  );
  const imported = pr.status?.conditions?.find((c) => c.type === "Imported");
  const importedImage = new RegExp(
    `app.tar" \\(sha256 [0-9a-f]{64}\\) imported as "(${
      b.env.info.registry!.host
    }/lpm/xc@sha256:[0-9a-f]{64})"`,
  ).exec(imported!.message)?.[1];
  assert(importedImage, `no image in "${imported!.message}"`);
  const pod = await b.core.readNamespacedPod({
    name: pr.status!.restoredPodName!,
    namespace: NS,
  });
  assertEquals(pod.metadata?.labels?.restored, "yes");
  assertEquals(pod.spec?.nodeName, b.env.info.nodes![0].name);
  await assertContinues(b, pr.status!.restoredPodName!, before);
  await assertContinues(b, pr.status!.restoredPodName!, before, "side");
  return importedImage;
}

/**
 * From a checkpoint image in a registry (the one B imported, which carries
 * the pod spec like the agent's image does; nothing else is read), and from
 * the OCI layout tarball exported from A's registry through the CLI (which
 * pushes it into B's registry; no --container: the image says).
 */
async function restoreFromImages(
  b: Cluster,
  importedImage: string,
  tarball: string,
  before: number,
): Promise<void> {
  const fromImage = await restore(b, "from-image", {
    image: { references: [{ containerName: "app", image: importedImage }] },
  });
  assertEquals(fromImage.status?.phase, "Succeeded", fromImage.status?.message);
  await assertContinues(b, fromImage.status!.restoredPodName!, before);

  const fromLayout = await restoreCli(b, [
    "--from",
    `oci-archive:${tarball}`,
    "--storage-class",
    CLASS,
  ]);
  assertEquals(fromLayout.code, 0, fromLayout.stderr);
  const layoutPod = /^pod\t[^/]+\/(\S+)$/m.exec(fromLayout.stdout)?.[1];
  assert(layoutPod, fromLayout.stdout);
  await assertContinues(b, layoutPod, before);
}

/**
 * Refusals: the same checkpoint with metadata saying arm64 (through the CLI),
 * then dumped by a newer CRIU than the target node's agent reports.
 */
async function assertIncompatibleRefused(
  b: Cluster,
  minio: NonNullable<Environment["info"]["minio"]>,
  key: string,
): Promise<void> {
  const storeSpec = {
    provider: "minio",
    minio: { endpoint: minio.endpoint, bucket: minio.bucket, prefix: "xc/" },
    credentialsSecretRef: { name: CLASS, namespace: "lpm-system" },
  } as Parameters<typeof createStore>[0];
  const storeSecret = { accessKeyId: minio.accessKey, secretAccessKey: minio.secretKey };
  const store = createStore(storeSpec, { secret: storeSecret });
  const meta = JSON.parse(
    await new Response(await store.get(key.replace(/\.tar$/, ".checkpoint.json"))).text(),
  );
  meta.architecture = "arm64";
  const armKey = `${NS}/arm/x/app.checkpoint.json`;
  // Metadata names an archive next to it (the reader refuses one elsewhere); the
  // refusal comes before any archive is read.
  meta.archive = { ...meta.archive, key: `${NS}/arm/x/app.tar` };
  await store.put(armKey, new Blob([JSON.stringify(meta)]).stream());
  store.close?.();
  // Through the CLI this time: `deno task restore --from storage:<class>/<key> --wait`.
  const cli = await restoreCli(b, ["--from", `storage:${CLASS}/${armKey}`]);
  assertEquals(cli.code, 1, cli.stderr);
  assertMatch(cli.stderr, /Failed: Checkpoint was taken on architecture "arm64"/);
  const refused = (await b.lpm.get<PodRestore>("podrestores", NS, cli.stdout.trim()))!;
  assertEquals(refused.status?.phase, "Failed");
  const cond = refused.status?.conditions?.find((c) => c.type === "Succeeded");
  assertEquals(cond?.reason, "Incompatible");
  assertMatch(cond!.message, /architecture "arm64" but node "node-a" is "amd64"/);

  // Dumped by a newer CRIU than the target node's agent reports.
  const newer = { ...meta, architecture: "amd64", runtime: { ...meta.runtime } };
  newer.runtime.criuVersion = "99.0";
  newer.archive = { ...meta.archive, key: `${NS}/newer/x/app.tar` };
  const newerKey = `${NS}/newer/x/app.checkpoint.json`;
  const store2 = createStore(storeSpec, { secret: storeSecret });
  await store2.put(newerKey, new Blob([JSON.stringify(newer)]).stream());
  store2.close?.();
  const criu = await restore(b, "newer-criu", {
    storage: { storageClassName: CLASS, key: newerKey },
  });
  assertEquals(criu.status?.phase, "Failed");
  const criuCond = criu.status?.conditions?.find((c) => c.type === "Succeeded");
  assertEquals(criuCond?.reason, "Incompatible");
  assertMatch(criuCond!.message, /dumped by CRIU 99\.0 but node "node-a" has CRIU \d+\.\d+/);
}

envTest(
  { starts: ["kube", "minio", "registry", "nodes", "lpm"] },
  "cross-cluster: a checkpoint from cluster A (torn down) runs in cluster B",
  opts,
  async () => {
    const t0 = performance.now();
    const shared = await startEnvironment({ parts: ["minio"] });
    let a: Cluster | undefined;
    let b: Cluster | undefined;
    const work: string[] = [];
    try {
      const minio = shared.info.minio!;
      a = await cluster(minio);
      log(`cluster A up in ${Math.round(performance.now() - t0)} ms`);
      const cp = await checkpointInA(a);
      const layoutDir = await Deno.makeTempDir({ prefix: "lpm-xc-layout-" });
      work.push(layoutDir);
      const tarball = await exportLayout(cp.cc, layoutDir);

      await a.env.stop();
      a = undefined;
      log("cluster A torn down");

      const tB = performance.now();
      b = await cluster(minio);
      log(`cluster B up in ${Math.round(performance.now() - tB)} ms`);
      await tagBaseImageInB(b, cp);
      const importedImage = await restoreFromStorage(b, cp);
      await restoreFromImages(b, importedImage, tarball, cp.before);
      await assertIncompatibleRefused(b, minio, cp.key);
      log(`total ${Math.round(performance.now() - t0)} ms`);
    } finally {
      await a?.env.stop();
      await b?.env.stop();
      await shared.stop();
      for (const d of work) await Deno.remove(d, { recursive: true }).catch(() => {});
    }
  },
);
