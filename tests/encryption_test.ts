/**
 * Encrypted checkpoints on the real parts (issue 22): a busybox shell holds a
 * random marker in a variable (made inside the container, so it is in no pod
 * spec, annotation or metadata: only in the process's memory, and in the
 * logs on the node) and echoes it. It migrates node-a -> node-b through a
 * class with `spec.encryption`. Then every object in MinIO (through the S3
 * API) and every blob of the registry (its data directory) is scanned for
 * the marker's bytes: none may hold it; as the control that the scan can
 * fail, the stored archive decrypted with the class key does hold it. The
 * restored shell goes on echoing the same marker. containerd itself cannot
 * pull the encrypted image (checked on node-a), which is why the target's
 * agent decrypts it and hands it to its runtime. A target whose class holds
 * another key under the same id fails the prepare naming the field, a copy
 * of the image whose layer is cut short fails on its final chunk, and
 * neither leaves an image in node-a's containerd; a migration
 * through a class whose Secret lacks the key fails before the pod is touched,
 * the source still running.
 *
 * Cost: one migration of a busybox pod (about 15-25 s) plus the scans.
 */
import type * as k8s from "@kubernetes/client-node";
import "../kube/http1.ts";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "@std/assert";
import * as Minio from "minio";
import { deleteNamespaceAndWait, kubeClients, openWorkspace } from "../testing/e2e.ts";
import { envTest, testEnv } from "../testing/env.ts";
import { type EnvironmentInfo, waitFor } from "../localenv/mod.ts";
import type { LpmClient } from "../kube/lpm_client.ts";
import type { CheckpointStorageClass, ContainerCheckpoint, PodMigration } from "../api/mod.ts";
import { createStore, decryptStream, encryptStream, loadKeyRing } from "../storage/mod.ts";
import {
  digestBytes,
  ENC_KEYS_LPM,
  type ImageManifest,
  isEncryptedLayer,
  parseReference,
  RegistryClient,
} from "../oci/mod.ts";
import { criPullImage } from "../agent/cri_image.ts";
import { AgentClient } from "../contract/client.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

interface Ctx {
  env: EnvironmentInfo;
  core: k8s.CoreV1Api;
  lpm: LpmClient;
  ns: string;
  cls: string;
  id: string;
  keyText: string;
  cleanup: (() => Promise<unknown>)[];
}

const randomKey = () => btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));

async function createKeySecret(c: Ctx, name: string, data: Record<string, string>) {
  await c.core.createNamespacedSecret({
    namespace: "lpm-system",
    body: { metadata: { name }, stringData: data },
  });
  c.cleanup.push(() => c.core.deleteNamespacedSecret({ name, namespace: "lpm-system" }));
}

async function setup(): Promise<Ctx> {
  const env = testEnv();
  if ((env.nodes?.length ?? 0) < 2 || !env.lpm) {
    throw new Error('These tests need 2 nodes and lpm in the environment: run "deno task test"');
  }
  const id = crypto.randomUUID().slice(0, 6);
  const cls = `enc-${id}`;
  const keyText = randomKey();
  const { core, lpm } = kubeClients(env.kube!.kubeconfig);
  const c: Ctx = { env, core, lpm, ns: `enc-${id}`, cls, id, keyText, cleanup: [] };
  // The keys first: the class is Available only when its spec.encryption validates.
  await createKeySecret(c, `${cls}-keys`, { k1: keyText });
  await openWorkspace(env, {
    ns: c.ns,
    storageClass: {
      name: cls,
      prefix: `${cls}/`,
      repository: `lpm/${cls}`,
      spec: {
        encryption: {
          secretRef: { name: `${cls}-keys`, namespace: "lpm-system" },
          keys: [{ id: "k1" }],
        },
      },
    },
  });
  // Run last to first: the namespace (its checkpoints' finalizers need the class), the class, its Secrets.
  c.cleanup.push(
    () => core.deleteNamespacedSecret({ name: cls, namespace: "lpm-system" }),
    () => lpm.delete("checkpointstorageclasses", "", cls),
    () => deleteNamespaceAndWait(core, c.ns),
  );
  return c;
}

/** The shell: a marker made inside the container, kept in a variable, echoed with a count. */
const MARKER_SHELL = 'M="LPMMARK$(head -c 12 /dev/urandom | od -An -tx1 | tr -dc 0-9a-f)"; ' +
  'i=0; while true; do i=$((i+1)); echo "$M $i"; sleep 0.3; done';

/** The marker and the last count a pod's log shows. */
async function markerLines(c: Ctx, pod: string): Promise<{ marker: string; last: number }> {
  const log = String(await c.core.readNamespacedPodLog({ name: pod, namespace: c.ns }));
  const lines = log.split("\n").map((l) => l.trim().match(/^(LPMMARK[0-9a-f]{24}) (\d+)$/))
    .filter((m) => m !== null);
  const markers = new Set(lines.map((m) => m![1]));
  assert(markers.size <= 1, `several markers in the log of ${pod}: ${[...markers]}`);
  return { marker: lines.at(-1)?.[1] ?? "", last: Number(lines.at(-1)?.[2] ?? 0) };
}

async function startMarkerPod(c: Ctx, name: string): Promise<string> {
  await c.core.createNamespacedPod({
    namespace: c.ns,
    body: {
      metadata: { name },
      spec: {
        nodeName: c.env.nodes![0].name,
        containers: [{
          name: "app",
          image: c.env.nodeImages!.busybox,
          command: ["sh", "-c", MARKER_SHELL],
        }],
      },
    },
  });
  const { marker } = await waitFor(async () => {
    const m = await markerLines(c, name).catch(() => ({ marker: "", last: 0 }));
    return m.last >= 3 ? m : undefined;
  }, { what: `pod "${name}" to echo its marker`, timeoutMs: 60_000 });
  return marker;
}

async function migrate(
  c: Ctx,
  name: string,
  pod: string,
  cls: string,
  target = c.env.nodes![1].name,
): Promise<PodMigration> {
  await c.lpm.create("podmigrations", c.ns, {
    apiVersion: "lpm.my.domain/v1",
    kind: "PodMigration",
    metadata: { name, namespace: c.ns },
    spec: { podName: pod, targetNode: target, storageClassName: cls },
  });
  return await waitFor(async () => {
    const pm = await c.lpm.get<PodMigration>("podmigrations", c.ns, name);
    return pm?.status?.phase === "Succeeded" || pm?.status?.phase === "Failed" ? pm : undefined;
  }, { what: `PodMigration "${name}" to finish`, timeoutMs: 150_000, intervalMs: 250 });
}

/** Whether `needle` occurs in a stream (pieces overlap by the needle's length). */
async function streamHas(s: ReadableStream<Uint8Array>, needle: Uint8Array): Promise<boolean> {
  let tail = new Uint8Array();
  for await (const chunk of s) {
    const buf = new Uint8Array(tail.length + chunk.length);
    buf.set(tail);
    buf.set(chunk, tail.length);
    if (indexOf(buf, needle) >= 0) {
      await s.cancel().catch(() => {});
      return true;
    }
    tail = buf.slice(Math.max(0, buf.length - needle.length + 1));
  }
  return false;
}

function indexOf(h: Uint8Array, n: Uint8Array): number {
  let i = h.indexOf(n[0]);
  while (i >= 0 && i <= h.length - n.length) {
    let k = 1;
    while (k < n.length && h[i + k] === n[k]) k++;
    if (k === n.length) return i;
    i = h.indexOf(n[0], i + 1);
  }
  return -1;
}

function minioClient(env: EnvironmentInfo): Minio.Client {
  const u = new URL(env.minio!.endpoint);
  return new Minio.Client({
    endPoint: u.hostname,
    port: Number(u.port),
    useSSL: false,
    accessKey: env.minio!.accessKey,
    secretKey: env.minio!.secretKey,
    region: env.minio!.region,
  });
}

/** Every object of the bucket (all prefixes) through the S3 API: the keys that hold `needle`. */
async function scanMinio(env: EnvironmentInfo, needle: Uint8Array) {
  const mc = minioClient(env);
  const hits: string[] = [];
  let objects = 0;
  const names: string[] = [];
  for await (const o of mc.listObjectsV2(env.minio!.bucket, "", true)) {
    if (o.name) names.push(o.name);
  }
  for (const name of names) {
    const body = await mc.getObject(env.minio!.bucket, name);
    objects++;
    if (await streamHas(toWeb(body), needle)) hits.push(name);
  }
  return { objects, hits };
}

function toWeb(body: AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> {
  return ReadableStream.from(body) as ReadableStream<Uint8Array>;
}

/** Every blob in the registry's data directory: the files that hold `needle`. */
async function scanRegistry(env: EnvironmentInfo, needle: Uint8Array) {
  const hits: string[] = [];
  let blobs = 0;
  const walk = async (dir: string): Promise<void> => {
    for await (const e of Deno.readDir(dir)) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else if (e.isFile && p.includes("/blobs/")) {
        blobs++;
        if (await streamHas((await Deno.open(p)).readable, needle)) hits.push(p);
      }
    }
  };
  await walk(env.registry!.dataDir);
  return { blobs, hits };
}

async function manifestOf(env: EnvironmentInfo, ref: string): Promise<ImageManifest> {
  const [name, digest] = ref.split("@");
  const repo = name.slice(name.indexOf("/") + 1);
  const res = await fetch(`http://${env.registry!.host}/v2/${repo}/manifests/${digest}`, {
    headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
  });
  assertEquals(res.status, 200);
  return await res.json() as ImageManifest;
}

function agentClient(env: EnvironmentInfo, node: string): Promise<AgentClient> {
  const agent = env.lpm!.agents.find((a) => a.node === node)!;
  return AgentClient.connect(agent.address, {
    security: {
      mode: "mtls",
      files: {
        cert: env.lpm!.tls.controllerCert,
        key: env.lpm!.tls.controllerKey,
        ca: env.lpm!.tls.ca,
      },
    },
  });
}

/** The stored archive, read through the class's store and decrypted, holds the marker (the scan's control). */
async function assertArchiveHoldsMarker(
  c: Ctx,
  cls: CheckpointStorageClass,
  key: string,
  needle: Uint8Array,
) {
  const store = createStore(cls.spec, {
    secret: { accessKeyId: c.env.minio!.accessKey, secretAccessKey: c.env.minio!.secretKey },
  });
  try {
    const ring = await loadKeyRing(cls.spec.encryption!, { k1: c.keyText });
    const plain = (await store.get(key)).pipeThrough(decryptStream(ring));
    assert(await streamHas(plain, needle), "the decrypted archive does not hold the marker");
  } finally {
    store.close?.();
  }
}

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name:
    "encryption: a marker held in memory migrates through an encrypting class and is in no MinIO object and no registry blob",
  ...opts,
  async fn() {
    const c = await setup();
    try {
      const cls = await c.lpm.get<CheckpointStorageClass>("checkpointstorageclasses", "", c.cls);
      assertEquals(cls?.status?.encryption, 'On (key "k1")');
      const marker = await startMarkerPod(c, "holder");
      const needle = new TextEncoder().encode(marker);
      const t0 = Date.now();
      const pm = await migrate(c, "move", "holder", c.cls);
      console.log(`migration: ${pm.status?.phase} in ${Date.now() - t0} ms`);
      assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
      const cc = await c.lpm.get<ContainerCheckpoint>("containercheckpoints", c.ns, "move-app");
      const image = cc!.status!.image!.reference;
      const archiveKey = cc!.status!.archive!.key;

      // The restored shell has the same marker in memory and goes on echoing it.
      const restored = pm.status!.restoredPodName!;
      const after = await waitFor(async () => {
        const m = await markerLines(c, restored).catch(() => undefined);
        return m && m.last > 3 ? m : undefined;
      }, { what: "the restored pod to echo", timeoutMs: 30_000 });
      assertEquals(after.marker, marker);

      // The image follows ocicrypt: an encrypted layer with lpm's key annotation.
      const manifest = await manifestOf(c.env, image);
      assertEquals(manifest.layers.length, 1);
      assert(isEncryptedLayer(manifest.layers[0]), manifest.layers[0].mediaType);
      assertStringIncludes(atob(manifest.layers[0].annotations![ENC_KEYS_LPM]), '"kid":"k1"');

      const minio = await scanMinio(c.env, needle);
      const registry = await scanRegistry(c.env, needle);
      console.log(
        `scanned ${minio.objects} MinIO objects and ${registry.blobs} registry blobs for the marker`,
      );
      assertEquals(minio.hits, [], "MinIO objects holding the marker");
      assertEquals(registry.hits, [], "registry blobs holding the marker");
      assert(minio.objects > 0 && registry.blobs > 0);
      await assertArchiveHoldsMarker(c, cls!, archiveKey, needle);

      // containerd on a node cannot pull the encrypted image itself (no ocicrypt decryptor).
      await assertRejects(() =>
        criPullImage(`unix://${c.env.nodes![0].containerdSocket}`, image, { timeoutMs: 60_000 })
      );

      // Another key under the same id: the target's prepare fails naming the field.
      await assertWrongKeyFails(c, image);
      // A copy of the image whose last chunk was cut short: the prepare fails, nothing imported.
      await assertTruncatedLayerFails(c, image);
      // Another blob sealed with the class key, under the image's config: the diff_id refuses it.
      await assertSubstitutedLayerFails(c, image, cls!);
      await assertNothingImported(c, [image]);
    } finally {
      for (const f of c.cleanup.reverse()) await f().catch(() => {});
    }
  },
});

/** A class holding other material under id "k1": decryption fails and says which key and field. */
async function assertWrongKeyFails(c: Ctx, image: string): Promise<void> {
  const wrong = `${c.cls}-wrong`;
  await createKeySecret(c, `${wrong}-keys`, { k1: randomKey() });
  await c.lpm.create("checkpointstorageclasses", "", {
    apiVersion: "lpm.my.domain/v1",
    kind: "CheckpointStorageClass",
    metadata: { name: wrong },
    spec: {
      provider: "local",
      local: { path: "/tmp/lpm-encryption-test-unused" },
      registry: { repository: image.split("@")[0], insecure: true },
      encryption: {
        secretRef: { name: `${wrong}-keys`, namespace: "lpm-system" },
        keys: [{ id: "k1" }],
      },
    },
  });
  c.cleanup.push(() => c.lpm.delete("checkpointstorageclasses", "", wrong));
  const end = await prepareOnNodeA(c, `wrong-key-${c.id}`, image, wrong);
  assertEquals(end.phase, "Failed");
  assertStringIncludes(end.message ?? "", 'with key "k1"');
  assertStringIncludes(end.message ?? "", `spec.encryption of storage class "${wrong}"`);
}

/**
 * The image pushed again with its layer blob cut 7 bytes short (inside the
 * final chunk's tag): node-a's prepare through the right class fails on the
 * final chunk, so the runtime got every chunk but the last and must have
 * stored nothing (checked by {@linkcode assertNothingImported}).
 */
async function assertTruncatedLayerFails(c: Ctx, image: string): Promise<void> {
  const ref = parseReference(image);
  const manifest = await manifestOf(c.env, image);
  const client = new RegistryClient(ref.host, { insecure: true });
  try {
    const { stream } = await client.getBlob(ref.repository, manifest.layers[0].digest);
    const blob = new Uint8Array(await new Response(stream).arrayBuffer());
    const cut = await client.ensureBlob(ref.repository, blob.slice(0, blob.length - 7));
    const bytes = new TextEncoder().encode(JSON.stringify({
      ...manifest,
      layers: [{ ...manifest.layers[0], ...cut }],
    }));
    const digest = digestBytes(bytes);
    await client.putManifest(ref.repository, digest, bytes);
    const cutImage = `${ref.host}/${ref.repository}@${digest}`;
    const end = await prepareOnNodeA(c, `truncated-${c.id}`, cutImage, c.cls);
    assertEquals(end.phase, "Failed");
    assertStringIncludes(end.message ?? "", "fails authentication");
    assertStringIncludes(end.message ?? "", "truncated");
    await assertNothingImported(c, [cutImage]);
  } finally {
    client.close();
  }
}

/**
 * The image pushed again with its layer replaced by other data sealed with
 * the same class key (it authenticates): the agent does not hash the
 * ciphertext, so this is the check that the runtime's `diff_id` check (the
 * config is the image's own) refuses it and stores nothing.
 */
async function assertSubstitutedLayerFails(
  c: Ctx,
  image: string,
  cls: CheckpointStorageClass,
): Promise<void> {
  const ref = parseReference(image);
  const manifest = await manifestOf(c.env, image);
  const ring = await loadKeyRing(cls.spec.encryption!, { k1: c.keyText });
  const other = crypto.getRandomValues(new Uint8Array(3000));
  const sealed = new Uint8Array(
    await new Response(new Blob([other]).stream().pipeThrough(encryptStream(ring))).arrayBuffer(),
  );
  const client = new RegistryClient(ref.host, { insecure: true });
  try {
    const blob = await client.ensureBlob(ref.repository, sealed);
    const bytes = new TextEncoder().encode(JSON.stringify({
      ...manifest,
      layers: [{ ...manifest.layers[0], ...blob }],
    }));
    const digest = digestBytes(bytes);
    await client.putManifest(ref.repository, digest, bytes);
    const swapped = `${ref.host}/${ref.repository}@${digest}`;
    const end = await prepareOnNodeA(c, `substituted-${c.id}`, swapped, c.cls);
    assertEquals(end.phase, "Failed", "a layer that is not the config's diff_id was accepted");
    assertStringIncludes(end.message ?? "", "did not take the decrypted checkpoint image");
    assertStringIncludes(end.message ?? "", "unexpected commit digest"); // containerd's diff_id check
    console.log(`substituted layer: ${end.message?.slice(-300)}`);
    await assertNothingImported(c, [swapped]);
  } finally {
    client.close();
  }
}

/** node-a's containerd has none of `images`, and no image left under a loopback name. */
async function assertNothingImported(c: Ctx, images: string[]): Promise<void> {
  const out = await new Deno.Command("ctr", {
    args: ["--address", c.env.nodes![0].containerdSocket, "-n", "k8s.io", "images", "ls", "-q"],
    stdout: "piped",
    stderr: "null",
  }).output();
  assert(out.success, "ctr images ls failed on node-a");
  const names = new TextDecoder().decode(out.stdout).split("\n").filter(Boolean);
  assert(names.length > 0, "node-a lists no image at all"); // the control: ctr sees the store
  for (const i of images) assert(!names.includes(i), `node-a holds "${i}"`);
  const loopback = names.filter((n) => /^127\.0\.0\.1:\d+\/lpm-[0-9a-f]{32}@/.test(n));
  assertEquals(loopback, [], "images left under a loopback name");
}

/** PrepareRestore of `image` with class `cls` on node-a, through its agent; the final operation. */
async function prepareOnNodeA(c: Ctx, id: string, image: string, cls: string) {
  const client = await agentClient(c.env, c.env.nodes![0].name);
  try {
    const op = await client.prepareRestore({
      operationId: id,
      image,
      insecure: true,
      storageClassName: cls,
    });
    return await waitFor(async () => {
      const o = await client.getOperation(op.id);
      return o.phase === "Failed" || o.phase === "Succeeded" ? o : undefined;
    }, { what: `prepare "${id}" to end`, timeoutMs: 60_000 });
  } finally {
    client.close();
  }
}

async function kubectl(c: Ctx, args: string[]): Promise<void> {
  const out = await new Deno.Command("kubectl", {
    args: ["--kubeconfig", c.env.kube!.kubeconfig, ...args],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert(out.success, new TextDecoder().decode(out.stderr));
}

async function setKeys(c: Ctx, ids: string[]): Promise<void> {
  await kubectl(c, [
    "patch",
    "checkpointstorageclass",
    c.cls,
    "--type",
    "merge",
    "-p",
    JSON.stringify({ spec: { encryption: { keys: ids.map((id) => ({ id })) } } }),
  ]);
}

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name:
    "encryption: rotation: a new first key encrypts new checkpoints, old ones stay readable while their key is listed",
  ...opts,
  async fn() {
    const c = await setup();
    try {
      await startMarkerPod(c, "holder");
      const pm1 = await migrate(c, "first", "holder", c.cls);
      assertEquals(pm1.status?.phase, "Succeeded", pm1.status?.message);
      const image1 = (await c.lpm.get<ContainerCheckpoint>(
        "containercheckpoints",
        c.ns,
        "first-app",
      ))!.status!.image!.reference;
      // Rotate: k2 first (encrypts), k1 still listed (decrypts).
      await c.core.replaceNamespacedSecret({
        name: `${c.cls}-keys`,
        namespace: "lpm-system",
        body: {
          metadata: { name: `${c.cls}-keys` },
          stringData: { k1: c.keyText, k2: randomKey() },
        },
      });
      await setKeys(c, ["k2", "k1"]);
      const pm2 = await migrate(
        c,
        "second",
        pm1.status!.restoredPodName!,
        c.cls,
        c.env.nodes![0].name,
      );
      assertEquals(pm2.status?.phase, "Succeeded", pm2.status?.message);
      const image2 = (await c.lpm.get<ContainerCheckpoint>(
        "containercheckpoints",
        c.ns,
        "second-app",
      ))!.status!.image!.reference;
      const kid = async (ref: string) =>
        JSON.parse(atob((await manifestOf(c.env, ref)).layers[0].annotations![ENC_KEYS_LPM])).kid;
      assertEquals(await kid(image1), "k1");
      assertEquals(await kid(image2), "k2");
      // The old checkpoint decrypts while k1 is listed...
      const ok = await prepareOnNodeA(c, `rot-ok-${c.id}`, image1, c.cls);
      assertEquals(ok.phase, "Succeeded", ok.message);
      // ...and fails naming the field once it is dropped.
      await setKeys(c, ["k2"]);
      const gone = await prepareOnNodeA(c, `rot-gone-${c.id}`, image1, c.cls);
      assertEquals(gone.phase, "Failed");
      assertStringIncludes(gone.message ?? "", 'with key "k1", which spec.encryption.keys');
    } finally {
      for (const f of c.cleanup.reverse()) await f().catch(() => {});
    }
  },
});

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name:
    "encryption: a migration through a class whose Secret lacks the key fails naming spec.encryption.keys and the source keeps running",
  ...opts,
  async fn() {
    const c = await setup();
    try {
      // The key entry disappears from the Secret: the agents' next read finds none.
      await c.core.replaceNamespacedSecret({
        name: `${c.cls}-keys`,
        namespace: "lpm-system",
        body: { metadata: { name: `${c.cls}-keys` }, stringData: { other: randomKey() } },
      });
      await startMarkerPod(c, "holder");
      const before = (await markerLines(c, "holder")).last;
      const pm = await migrate(c, "move", "holder", c.cls);
      assertEquals(pm.status?.phase, "Failed");
      assertStringIncludes(pm.status?.message ?? "", "spec.encryption.keys[0]");
      assertStringIncludes(pm.status?.message ?? "", 'no entry "k1"');
      const src = await c.core.readNamespacedPod({ name: "holder", namespace: c.ns });
      assertEquals(src.status?.phase, "Running");
      await waitFor(async () => (await markerLines(c, "holder")).last > before + 2, {
        what: "the source to go on echoing",
        timeoutMs: 30_000,
      });
    } finally {
      for (const f of c.cleanup.reverse()) await f().catch(() => {});
    }
  },
});
