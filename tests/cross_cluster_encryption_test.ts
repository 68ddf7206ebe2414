/**
 * CROSS-CLUSTER ENCRYPTION E2E (starts its own environments, like
 * `cross_cluster_test.ts`): cluster A (one real node + lpm) checkpoints a
 * shell holding a random marker in memory into a shared MinIO through a
 * class with `spec.encryption`, and is torn down. Cluster B (its own API
 * server, registry, node and lpm) first restores through a class on the same
 * bucket WITHOUT the key: the PodRestore fails naming spec.encryption and no
 * pod is created; then through a class holding the key: B's controller
 * rebuilds the image from the ciphertext without decrypting it, B's agent
 * decrypts and imports it on the node, and the restored shell echoes the
 * marker. MinIO's objects and B's registry blobs never hold the marker.
 *
 * Cost: two single-node clusters one after the other (about 60-90 s here).
 */
import * as k8s from "@kubernetes/client-node";
import { envTest } from "../testing/env.ts";
import "../kube/http1.ts";
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import * as Minio from "minio";
import { type Environment, startEnvironment } from "../localenv/environment.ts";
import { ctr } from "../localenv/containerd.ts";
import { createMinioClass, createNamespace, waitFor } from "../localenv/mod.ts";
import { LpmClient } from "../kube/lpm_client.ts";
import type { ContainerCheckpoint, PodCheckpoint, PodRestore } from "../api/mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const NS = "xce";
const MARKER_SHELL = 'M="LPMMARK$(head -c 12 /dev/urandom | od -An -tx1 | tr -dc 0-9a-f)"; ' +
  'i=0; while true; do i=$((i+1)); echo "$M $i"; sleep 0.3; done';

interface Cluster {
  env: Environment;
  core: k8s.CoreV1Api;
  lpm: LpmClient;
}

const log = (m: string) => console.error(`[cross-cluster-encryption] ${m}`);
type MinioInfo = NonNullable<Environment["info"]["minio"]>;

/** A one-node cluster with lpm and namespace NS. */
async function cluster(): Promise<Cluster> {
  const env = await startEnvironment({ parts: ["kube", "registry"], nodes: 1, lpm: true });
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(env.info.kube!.kubeconfig);
  const c = { env, core: kc.makeApiClient(k8s.CoreV1Api), lpm: new LpmClient(kc) };
  await createNamespace(c.core, NS);
  return c;
}

/** Class `name` on the shared MinIO; with `key`, its spec.encryption holds it as id "k1". */
async function addClass(c: Cluster, minio: MinioInfo, name: string, key?: string) {
  if (key) {
    await c.core.createNamespacedSecret({
      namespace: "lpm-system",
      body: { metadata: { name: `${name}-keys` }, stringData: { k1: key } },
    });
  }
  await createMinioClass(c.core, c.lpm, {
    name,
    minio,
    prefix: "xce/",
    repository: `${c.env.info.registry!.host}/lpm/${name}`,
    spec: key
      ? {
        encryption: {
          secretRef: { name: `${name}-keys`, namespace: "lpm-system" },
          keys: [{ id: "k1" }],
        },
      }
      : {},
  });
}

async function markerOf(c: Cluster, pod: string): Promise<{ marker: string; last: number }> {
  const text = String(await c.core.readNamespacedPodLog({ name: pod, namespace: NS }));
  const m = [...text.matchAll(/^(LPMMARK[0-9a-f]{24}) (\d+)$/gm)].at(-1);
  return { marker: m?.[1] ?? "", last: Number(m?.[2] ?? 0) };
}

/** The marker shell in A, checkpointed by a PodCheckpoint; its marker and archive key prefix. */
async function checkpointInA(a: Cluster) {
  await a.core.createNamespacedPod({
    namespace: NS,
    body: {
      metadata: { name: "holder" },
      spec: {
        nodeName: a.env.info.nodes![0].name,
        containers: [{
          name: "app",
          image: a.env.info.nodeImages!.busybox,
          command: ["sh", "-c", MARKER_SHELL],
        }],
      },
    },
  });
  const { marker } = await waitFor(async () => {
    const m = await markerOf(a, "holder").catch(() => ({ marker: "", last: 0 }));
    return m.last >= 3 ? m : undefined;
  }, { what: "the marker shell to echo in A", timeoutMs: 60_000 });
  const running = await a.core.readNamespacedPod({ name: "holder", namespace: NS });
  const baseA = running.status!.containerStatuses![0].imageID!;
  await a.lpm.create("podcheckpoints", NS, {
    apiVersion: "lpm.my.domain/v1",
    kind: "PodCheckpoint",
    metadata: { name: "cp", namespace: NS },
    spec: { podName: "holder", storageClassName: "enc" },
  } as PodCheckpoint);
  const pc = await waitFor(async () => {
    const p = await a.lpm.get<PodCheckpoint>("podcheckpoints", NS, "cp");
    return p?.status?.phase === "Succeeded" || p?.status?.phase === "Failed" ? p : undefined;
  }, { what: "PodCheckpoint in A", timeoutMs: 120_000, intervalMs: 500 });
  assertEquals(pc.status?.phase, "Succeeded", pc.status?.message);
  const cc = await a.lpm.get<ContainerCheckpoint>(
    "containercheckpoints",
    NS,
    pc.status!.containers![0].containerCheckpointName,
  );
  const key = cc!.status!.archive!.key;
  return {
    marker,
    prefix: key.slice(0, key.lastIndexOf("/") + 1),
    busyboxA: a.env.info.nodeImages!.busybox,
    baseA,
  };
}

async function restore(b: Cluster, name: string, cls: string, key: string): Promise<PodRestore> {
  await b.lpm.create("podrestores", NS, {
    apiVersion: "lpm.my.domain/v1",
    kind: "PodRestore",
    metadata: { name, namespace: NS },
    spec: {
      source: { storage: { storageClassName: cls, key } },
      nodeName: b.env.info.nodes![0].name,
    },
  });
  return await waitFor(async () => {
    const pr = await b.lpm.get<PodRestore>("podrestores", NS, name);
    return pr?.status?.phase === "Succeeded" || pr?.status?.phase === "Failed" ? pr : undefined;
  }, { what: `PodRestore "${name}" to finish`, timeoutMs: 180_000, intervalMs: 500 });
}

/** Objects of the bucket and B's registry blobs that hold `needle` (whole files: they are small). */
async function holders(minio: MinioInfo, b: Cluster, needle: string) {
  const u = new URL(minio.endpoint);
  const mc = new Minio.Client({
    endPoint: u.hostname,
    port: Number(u.port),
    useSSL: false,
    accessKey: minio.accessKey,
    secretKey: minio.secretKey,
    region: minio.region,
  });
  const latin = (b: Uint8Array) => new TextDecoder("latin1").decode(b);
  const hits: string[] = [];
  let scanned = 0;
  const names: string[] = [];
  for await (const o of mc.listObjectsV2(minio.bucket, "", true)) if (o.name) names.push(o.name);
  for (const n of names) {
    const body = ReadableStream.from(await mc.getObject(minio.bucket, n));
    scanned++;
    if (latin(new Uint8Array(await new Response(body).arrayBuffer())).includes(needle)) {
      hits.push(n);
    }
  }
  const walk = async (dir: string): Promise<void> => {
    for await (const e of Deno.readDir(dir)) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else if (e.isFile && p.includes("/blobs/")) {
        scanned++;
        if (latin(await Deno.readFile(p)).includes(needle)) hits.push(p);
      }
    }
  };
  await walk(b.env.info.registry!.dataDir);
  return { scanned, hits };
}

envTest(
  { starts: ["kube", "minio", "registry", "nodes", "lpm"] },
  "cross-cluster encryption: B restores A's encrypted checkpoint with the key, and fails cleanly without it",
  opts,
  async () => {
    const shared = await startEnvironment({ parts: ["minio"] });
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
    let a: Cluster | undefined;
    let b: Cluster | undefined;
    try {
      const minio = shared.info.minio!;
      a = await cluster();
      await addClass(a, minio, "enc", key);
      const cp = await checkpointInA(a);
      log(`checkpointed marker ${cp.marker} under "${cp.prefix}"`);
      await a.env.stop();
      a = undefined;

      b = await cluster();
      // A's busybox under A's names (tag and digest) on B's node (the rootfs the checkpoint goes with).
      const node = b.env.info.nodes![0];
      await ctr(node.containerdSocket, [
        "images",
        "pull",
        "--plain-http",
        b.env.info.nodeImages!.busybox,
      ]);
      for (const name of [cp.busyboxA, cp.baseA]) {
        await ctr(node.containerdSocket, ["images", "tag", b.env.info.nodeImages!.busybox, name]);
      }

      // Without the key: refused before any pod exists.
      await addClass(b, minio, "nokey");
      const refused = await restore(b, "nokey", "nokey", cp.prefix);
      assertEquals(refused.status?.phase, "Failed");
      const cond = refused.status?.conditions?.find((c) => c.type === "Succeeded");
      assertEquals(cond?.reason, "DecryptionFailed");
      assertStringIncludes(cond!.message, 'CheckpointStorageClass "nokey"');
      assertStringIncludes(cond!.message, "spec.encryption");
      const pods = await b.core.listNamespacedPod({ namespace: NS });
      assertEquals(pods.items.map((p) => p.metadata?.name), [], "nothing half-restored");

      // With the key.
      await addClass(b, minio, "enc", key);
      const pr = await restore(b, "withkey", "enc", cp.prefix);
      assertEquals(pr.status?.phase, "Succeeded", pr.status?.message);
      const restored = pr.status!.restoredPodName!;
      const after = await waitFor(async () => {
        const m = await markerOf(b!, restored).catch(() => undefined);
        return m && m.last > 3 ? m : undefined;
      }, { what: "the restored shell to echo in B", timeoutMs: 60_000 });
      assertEquals(after.marker, cp.marker);

      const scan = await holders(minio, b, cp.marker);
      log(`scanned ${scan.scanned} MinIO objects and registry blobs`);
      assertEquals(scan.hits, [], "objects or blobs holding the marker");
      assert(scan.scanned > 0);
    } finally {
      await a?.env.stop();
      await b?.env.stop();
      await shared.stop();
    }
  },
);
