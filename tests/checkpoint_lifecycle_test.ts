/**
 * Checkpoint lifecycle on the real parts (two nodes, the agents and the
 * controller, MinIO, the registry): a class's retention collects both copies
 * of a checkpoint, and a deleted PodCheckpoint takes its data with it unless
 * the class retains it. What is left is listed by MinIO's own client
 * (minio-js, every object under the class's prefix, data blobs included) and
 * by the registry's distribution API (tags and manifests), never through
 * lpm's store.
 */
import * as k8s from "@kubernetes/client-node";
import "../kube/http1.ts";
import type * as Minio from "minio";
import { assert, assertEquals } from "@std/assert";
import { minioClient, openWorkspace } from "../testing/e2e.ts";
import { envTest, requirePart, testEnv } from "../testing/env.ts";
import { waitFor } from "../localenv/mod.ts";
import type { LpmClient } from "../kube/lpm_client.ts";
import type { CheckpointStorageClass, ContainerCheckpoint, PodCheckpoint } from "../api/mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

interface Ctx {
  core: k8s.CoreV1Api;
  lpm: LpmClient;
  ns: string;
  cls: string;
  prefix: string;
  repo: string;
  registry: string;
  minio: Minio.Client;
  bucket: string;
}

async function setup(spec: Record<string, unknown>): Promise<Ctx> {
  const env = testEnv();
  const minio = requirePart("minio");
  const registry = requirePart("registry").host;
  if ((env.nodes?.length ?? 0) < 1 || !env.lpm) {
    throw new Error('These tests need a node and lpm in the environment: run "deno task test"');
  }
  const id = crypto.randomUUID().slice(0, 6);
  const cls = `life-${id}`;
  const prefix = `life-${id}/`;
  const repo = `lpm/life-${id}`;
  const { core, lpm, ns } = await openWorkspace(env, {
    ns: `life-${id}`,
    storageClass: { name: cls, prefix, repository: repo, spec },
  });
  return {
    core,
    lpm,
    ns,
    cls,
    prefix,
    repo,
    registry,
    bucket: minio.bucket,
    minio: minioClient(minio),
  };
}

async function teardown(c: Ctx): Promise<void> {
  // The counter ignores SIGTERM: no grace, or the namespace takes 30 s to go.
  await c.core.deleteCollectionNamespacedPod({ namespace: c.ns, gracePeriodSeconds: 0 })
    .catch(() => {});
  await c.core.deleteNamespace({ name: c.ns }).catch(() => {});
  // Retained data is ours to remove, once the namespace's checkpoints are gone.
  await waitFor(async () => {
    try {
      await c.core.readNamespace({ name: c.ns });
      return false;
    } catch {
      return true;
    }
  }, { what: `namespace "${c.ns}" to go`, timeoutMs: 120_000 }).catch(() => {});
  const names = await minioNames(c);
  if (names.length) await c.minio.removeObjects(c.bucket, names);
  await c.lpm.delete("checkpointstorageclasses", "", c.cls);
  await c.core.deleteNamespacedSecret({ name: c.cls, namespace: "lpm-system" }).catch(() => {});
}

/** Every object name under the class's prefix, as MinIO lists it. */
async function minioNames(c: Ctx): Promise<string[]> {
  const names: string[] = [];
  for await (const o of c.minio.listObjectsV2(c.bucket, c.prefix, true)) {
    if ((o as { name?: string }).name) names.push((o as { name: string }).name);
  }
  return names;
}

/** The checkpoint ids that have any object (manifest or data blob) in MinIO for pod `pod`. */
async function storedIds(c: Ctx, pod: string): Promise<string[]> {
  const ids = new Set<string>();
  for (const name of await minioNames(c)) {
    const rest = name.slice(c.prefix.length).replace(/^\.lpm-data\//, "");
    const [ns, p, id] = rest.split("/");
    if (ns === c.ns && p === pod && id) ids.add(id);
  }
  return [...ids].sort();
}

/** The repository's tags, as the registry lists them (none when it forgot the repository). */
async function tags(c: Ctx): Promise<string[]> {
  const res = await fetch(`http://${c.registry}/v2/${c.repo}/tags/list`);
  if (res.status === 404) {
    await res.body?.cancel();
    return [];
  }
  assertEquals(res.status, 200);
  return (((await res.json()) as { tags?: string[] | null }).tags ?? []).sort();
}

/** The HTTP status of a manifest HEAD by digest (200 present, 404 deleted). */
async function manifestStatus(c: Ctx, ref: string): Promise<number> {
  const digest = ref.split("@")[1];
  const res = await fetch(`http://${c.registry}/v2/${c.repo}/manifests/${digest}`, {
    method: "HEAD",
    headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
  });
  await res.body?.cancel();
  return res.status;
}

/** A running counter pod with an emptyDir, so each checkpoint also has a volume image. */
async function startPod(c: Ctx, name: string): Promise<void> {
  const env = testEnv();
  await c.core.createNamespacedPod({
    namespace: c.ns,
    body: {
      metadata: { name },
      spec: {
        nodeName: env.nodes![0].name,
        containers: [{
          name: "app",
          image: env.nodeImages!.busybox,
          command: [
            "sh",
            "-c",
            "echo kept > /data/note; i=0; while true; do i=$((i+1)); echo $i; sleep 0.3; done",
          ],
          volumeMounts: [{ name: "data", mountPath: "/data" }],
        }],
        volumes: [{ name: "data", emptyDir: {} }],
      },
    },
  });
  await waitFor(async () => {
    const p = await c.core.readNamespacedPod({ name, namespace: c.ns });
    return p.status?.phase === "Running";
  }, { what: `pod "${name}" to run`, timeoutMs: 60_000 });
}

interface Taken {
  name: string;
  uid: string;
  images: string[];
  tags: string[];
}

/** Checkpoints `pod` with a PodCheckpoint and waits until it has succeeded. */
async function checkpoint(
  c: Ctx,
  pod: string,
  name: string,
  extra: Record<string, unknown> = {},
): Promise<Taken> {
  const pc = await c.lpm.create<PodCheckpoint>("podcheckpoints", c.ns, {
    apiVersion: "lpm.my.domain/v1",
    kind: "PodCheckpoint",
    metadata: { name },
    spec: { podName: pod, storageClassName: c.cls, ...extra },
  });
  const done = await waitFor(async () => {
    const p = await c.lpm.get<PodCheckpoint>("podcheckpoints", c.ns, name);
    if (p?.status?.phase === "Failed") throw new Error(`${name} failed: ${p.status.message}`);
    return p?.status?.phase === "Succeeded" ? p : undefined;
  }, { what: `PodCheckpoint "${name}" to succeed`, timeoutMs: 90_000 });
  const cc = await c.lpm.get<ContainerCheckpoint>(
    "containercheckpoints",
    c.ns,
    done.status!.containers![0].containerCheckpointName,
  );
  // A pod without emptyDirs has no volume image.
  const vols = cc!.status!.volumes?.image;
  const tag = cc!.status!.image!.tag!;
  return {
    name,
    uid: pc.metadata!.uid!,
    images: vols ? [cc!.status!.image!.reference, vols] : [cc!.status!.image!.reference],
    tags: vols ? [tag, `${tag.slice(0, 120)}-volumes`] : [tag],
  };
}

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name: "lifecycle: a class with maxCount 2 keeps exactly the two newest of five checkpoints of " +
    "a pod, in MinIO and in the registry, and deletes the collected PodCheckpoints",
  ...opts,
  async fn() {
    const c = await setup({ retention: { maxCount: 2 } });
    try {
      await startPod(c, "counter");
      const taken: Taken[] = [];
      for (let i = 1; i <= 5; i++) taken.push(await checkpoint(c, "counter", `cp-${i}`));
      const kept = taken.slice(3);
      const gone = taken.slice(0, 3);
      // Retention runs after each new checkpoint: no periodic pass is waited for.
      await waitFor(
        async () =>
          JSON.stringify(await storedIds(c, "counter")) ===
            JSON.stringify(kept.map((t) => t.uid).sort()),
        { what: "MinIO to hold only the two newest checkpoints", timeoutMs: 60_000 },
      );
      assertEquals(await storedIds(c, "counter"), kept.map((t) => t.uid).sort());
      await waitFor(async () => (await tags(c)).length === 4, {
        what: "the registry to hold only the two newest checkpoints' tags",
        timeoutMs: 30_000,
      });
      assertEquals(await tags(c), kept.flatMap((t) => t.tags).sort());
      for (const t of kept) {
        for (const ref of t.images) assertEquals(await manifestStatus(c, ref), 200, ref);
      }
      for (const t of gone) {
        for (const ref of t.images) assertEquals(await manifestStatus(c, ref), 404, ref);
        // Deleted by retention; it goes once its finalizer ran (a moment later under load).
        await waitFor(async () => !(await c.lpm.get("podcheckpoints", c.ns, t.name)), {
          what: `PodCheckpoint "${t.name}" to be gone`,
          timeoutMs: 30_000,
        });
      }
      const cls = await waitFor(async () => {
        const x = await c.lpm.get<CheckpointStorageClass>("checkpointstorageclasses", "", c.cls);
        return x?.status?.retention?.checkpoints === 2 ? x : undefined;
      }, { what: "the class status to count 2 checkpoints", timeoutMs: 30_000 });
      assert(cls.status!.retention!.bytes! > 0);
      assert(cls.status!.retention!.nextRunTime);
      // `deno task status` shows what the class holds and when it collects next.
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL("../cli/status.ts", import.meta.url).pathname,
          "--kubeconfig",
          requirePart("kube").kubeconfig,
        ],
        stdout: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout).split("\n");
      const header = text.find((l) => l.startsWith("NAME") && l.includes("CHECKPOINTS"))!;
      const row = text.find((l) => l.startsWith(`${c.cls} `));
      assert(header && row, `no row for class "${c.cls}" in deno task status`);
      const col = (name: string, next: string) =>
        row.slice(header.indexOf(name), header.indexOf(next)).trim();
      assertEquals(col("CHECKPOINTS", "BYTES"), "2", row);
      // Passes also run after each new checkpoint: the next one is due after this one.
      const next = Date.parse(col("NEXT COLLECTION", "MESSAGE"));
      assert(next >= Date.parse(cls.status!.retention!.nextRunTime!), row);
    } finally {
      await teardown(c);
    }
  },
});

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name: "lifecycle: deleting a PodCheckpoint removes its archives, metadata and images " +
    "(deletionPolicy Delete); with Retain they stay",
  ...opts,
  async fn() {
    const c = await setup({});
    try {
      await startPod(c, "counter");
      const a = await checkpoint(c, "counter", "cp-delete");
      const b = await checkpoint(c, "counter", "cp-retain");
      assertEquals(await storedIds(c, "counter"), [a.uid, b.uid].sort());
      for (const ref of [...a.images, ...b.images]) assertEquals(await manifestStatus(c, ref), 200);

      await c.lpm.delete("podcheckpoints", c.ns, a.name);
      await waitFor(async () => !(await c.lpm.get("podcheckpoints", c.ns, a.name)), {
        what: `PodCheckpoint "${a.name}" to be gone`,
        timeoutMs: 60_000,
      });
      assertEquals(await storedIds(c, "counter"), [b.uid]);
      for (const ref of a.images) assertEquals(await manifestStatus(c, ref), 404, ref);
      assertEquals(await tags(c), b.tags.sort());

      const api = new k8s.KubeConfig();
      api.loadFromFile(requirePart("kube").kubeconfig);
      await api.makeApiClient(k8s.CustomObjectsApi).patchClusterCustomObject({
        group: "lpm.my.domain",
        version: "v1",
        plural: "checkpointstorageclasses",
        name: c.cls,
        body: { spec: { deletionPolicy: "Retain" } },
      }, k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch));
      await c.lpm.delete("podcheckpoints", c.ns, b.name);
      await waitFor(async () => !(await c.lpm.get("podcheckpoints", c.ns, b.name)), {
        what: `PodCheckpoint "${b.name}" to be gone`,
        timeoutMs: 60_000,
      });
      assertEquals(await storedIds(c, "counter"), [b.uid]);
      for (const ref of b.images) assertEquals(await manifestStatus(c, ref), 200, ref);
      assertEquals(await tags(c), b.tags.sort());
    } finally {
      await teardown(c);
    }
  },
});

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name: "lifecycle: a PodCheckpoint with leaveRunning false stops its pod after the checkpoint; " +
    "the checkpoint is stored",
  ...opts,
  async fn() {
    const c = await setup({});
    try {
      await startPod(c, "counter");
      const t = await checkpoint(c, "counter", "cp-stop", { leaveRunning: false });
      const pc = await c.lpm.get<PodCheckpoint>("podcheckpoints", c.ns, t.name);
      assertEquals(pc!.status!.freeze?.state, "Stopped");
      await waitFor(async () => {
        try {
          await c.core.readNamespacedPod({ name: "counter", namespace: c.ns });
          return false;
        } catch {
          return true;
        }
      }, { what: "the stopped pod to be gone", timeoutMs: 30_000 });
      assertEquals(await storedIds(c, "counter"), [t.uid]);
      for (const ref of t.images) assertEquals(await manifestStatus(c, ref), 200, ref);
    } finally {
      await teardown(c);
    }
  },
});

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name: "lifecycle: a PodCheckpoint with spec.containers checkpoints only the named container " +
    "of a two-container pod, which keeps running; a name not in the pod fails the checkpoint",
  ...opts,
  async fn() {
    const c = await setup({});
    try {
      const env = testEnv();
      const loop = (tag: string) =>
        `i=0; while true; do i=$((i+1)); echo ${tag}$i; sleep 0.3; done`;
      await c.core.createNamespacedPod({
        namespace: c.ns,
        body: {
          metadata: { name: "pair" },
          spec: {
            nodeName: env.nodes![0].name,
            containers: ["one", "two"].map((name) => ({
              name,
              image: env.nodeImages!.busybox,
              command: ["sh", "-c", loop(name)],
            })),
          },
        },
      });
      await waitFor(async () => {
        const p = await c.core.readNamespacedPod({ name: "pair", namespace: c.ns });
        return p.status?.phase === "Running";
      }, { what: 'pod "pair" to run', timeoutMs: 60_000 });

      const t = await checkpoint(c, "pair", "cp-two", { containers: ["two"] });
      const pc = await c.lpm.get<PodCheckpoint>("podcheckpoints", c.ns, t.name);
      assertEquals(pc!.status!.containers!.map((x) => x.name), ["two"]);
      const ccs = (await c.lpm.list<ContainerCheckpoint>("containercheckpoints", c.ns))
        .filter((cc) => cc.metadata?.ownerReferences?.some((o) => o.uid === t.uid));
      assertEquals(ccs.map((cc) => cc.spec.containerName), ["two"]);
      const archive = ccs[0].status!.archive!;
      assert(archive.key.endsWith("/two.tar"), archive.key);
      assertEquals(await storedIds(c, "pair"), [t.uid]);
      const names = await minioNames(c);
      assert(names.some((n) => n.endsWith(`/${t.uid}/two.tar`)), names.join(" "));
      assert(!names.some((n) => n.includes(`/${t.uid}/one.`)), names.join(" "));
      assertEquals(await manifestStatus(c, ccs[0].status!.image!.reference!), 200);
      const pod = await c.core.readNamespacedPod({ name: "pair", namespace: c.ns });
      assertEquals(pod.status?.phase, "Running");
      for (const s of pod.status?.containerStatuses ?? []) {
        assert(s.state?.running, `container "${s.name}" is not running`);
        assertEquals(s.restartCount, 0, s.name);
      }

      await c.lpm.create<PodCheckpoint>("podcheckpoints", c.ns, {
        apiVersion: "lpm.my.domain/v1",
        kind: "PodCheckpoint",
        metadata: { name: "cp-bad" },
        spec: { podName: "pair", storageClassName: c.cls, containers: ["two", "nope"] },
      });
      const bad = await waitFor(async () => {
        const p = await c.lpm.get<PodCheckpoint>("podcheckpoints", c.ns, "cp-bad");
        return p?.status?.phase === "Failed" ? p : undefined;
      }, { what: 'PodCheckpoint "cp-bad" to fail', timeoutMs: 30_000 });
      const msg = bad.status!.message!;
      assert(msg.includes("spec.containers") && msg.includes('"nope"'), msg);
      assert(!msg.includes('"two"'), msg);
      const badCcs = (await c.lpm.list<ContainerCheckpoint>("containercheckpoints", c.ns))
        .filter((cc) => cc.metadata?.ownerReferences?.some((o) => o.uid === bad.metadata!.uid));
      assertEquals(badCcs.length, 0);
      assertEquals(await storedIds(c, "pair"), [t.uid]);
    } finally {
      await teardown(c);
    }
  },
});

/** Every file under `dir`, relative to it. */
async function filesUnder(dir: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(`${dir}/${rel}`)) {
      const path = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) out.push(...await filesUnder(dir, path));
      else out.push(path);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort();
}

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name:
    "lifecycle: a local (hostPath) class with maxCount 2 keeps exactly the two newest of five " +
    "PodCheckpoints of a pod: the others' objects and their archives on the node's disk are gone",
  ...opts,
  async fn() {
    const c = await setup({});
    const env = testEnv();
    // The agents are host processes: the class's hostPath is a directory of node-a's own.
    const dir = `${env.nodes![0].dir}/store-${c.cls}`;
    const local = { ...c, cls: `${c.cls}-local` };
    try {
      await c.lpm.create<CheckpointStorageClass>("checkpointstorageclasses", "", {
        apiVersion: "lpm.my.domain/v1",
        kind: "CheckpointStorageClass",
        metadata: { name: local.cls },
        spec: {
          provider: "local",
          local: { path: dir },
          registry: { repository: `${c.registry}/${c.repo}`, insecure: true },
          retention: { maxCount: 2 },
        },
      });
      await startPod(c, "counter");
      const taken: Taken[] = [];
      for (let i = 1; i <= 5; i++) taken.push(await checkpoint(local, "counter", `cp-${i}`));
      const kept = taken.slice(3);
      const gone = taken.slice(0, 3);
      const onDisk = async () =>
        [...new Set((await filesUnder(dir)).map((f) => f.split("/").slice(0, 3).join("/")))]
          .sort();
      const want = kept.map((t) => `${c.ns}/counter/${t.uid}`).sort();
      await waitFor(async () => JSON.stringify(await onDisk()) === JSON.stringify(want), {
        what: "the node's disk to hold only the two newest checkpoints",
        timeoutMs: 60_000,
      });
      assertEquals(await onDisk(), want);
      for (const t of kept) {
        const files = (await filesUnder(dir)).filter((f) => f.includes(`/${t.uid}/`));
        assert(files.some((f) => f.endsWith("/app.tar")), files.join(" "));
        assert(await c.lpm.get("podcheckpoints", c.ns, t.name), `${t.name} was collected`);
      }
      for (const t of gone) {
        await waitFor(async () => !(await c.lpm.get("podcheckpoints", c.ns, t.name)), {
          what: `PodCheckpoint "${t.name}" to be gone`,
          timeoutMs: 30_000,
        });
        for (const ref of t.images) assertEquals(await manifestStatus(c, ref), 404, ref);
      }
      const left = await c.lpm.list<PodCheckpoint>("podcheckpoints", c.ns);
      assertEquals(left.map((p) => p.metadata!.name).sort(), kept.map((t) => t.name).sort());
      const cls = await waitFor(async () => {
        const x = await c.lpm.get<CheckpointStorageClass>(
          "checkpointstorageclasses",
          "",
          local.cls,
        );
        return x?.status?.retention?.checkpoints === 2 ? x : undefined;
      }, { what: "the local class's status to count 2 checkpoints", timeoutMs: 30_000 });
      assert(cls.status!.retention!.bytes! > 0, JSON.stringify(cls.status!.retention));
      assert(cls.status!.retention!.nextRunTime);
      assert(!/not enforced/.test(cls.status!.retention!.message ?? ""));
    } finally {
      await teardown(c);
      await c.lpm.delete("checkpointstorageclasses", "", local.cls).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
