/**
 * emptyDir volumes move with the pod, on the real local nodes: a process
 * that keeps a file of its emptyDir open (CRIU restores the open file only
 * if it exists on the target with its dumped size) and keeps reading both a
 * disk emptyDir and a memory (tmpfs) one. After the migration the restored
 * process is the same one (its count continues, its descriptor still names
 * the file) and the contents are those of the source, compared by digest
 * with what was read from the source before the migration.
 *
 * A step of tests/e2e_migration_test.ts, against lpm installed in-cluster:
 * the agent sees the tmpfs emptyDir through HostToContainer propagation.
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import "../../kube/http1.ts";
import { assert, assertEquals, assertGreater, assertStringIncludes } from "@std/assert";
import {
  createMinioClass,
  createNamespace,
  type EnvironmentInfo,
  kubectl,
  waitFor,
} from "../../localenv/mod.ts";
import { LpmClient } from "../../kube/lpm_client.ts";
import type { ContainerCheckpoint, PodMigration } from "../../api/mod.ts";
const CLASS = "e2e-volumes-minio";

// Writes 100k lines to the disk emptyDir and a note to the tmpfs one once,
// keeps /data/seed open on fd 3, and prints "<count> <bytes of seed> <note>".
const SCRIPT = [
  "[ -f /data/seed ] || seq 1 100000 > /data/seed",
  "[ -f /shm/note ] || echo carried-in-memory > /shm/note",
  "exec 3</data/seed",
  'i=0; while true; do i=$((i+1)); echo "$i $(wc -c < /data/seed) $(cat /shm/note)"; sleep 0.3; done',
].join("\n");

async function exec(kubeconfig: string, ns: string, pod: string, cmd: string[]): Promise<string> {
  return await kubectl(kubeconfig, ["-n", ns, "exec", pod, "--", ...cmd]);
}

/** The test's name, as tests/e2e_migration_test.ts runs it. */
export const EMPTYDIR_MOVES =
  "e2e: a pod's emptyDir (disk and memory) moves with it; its process keeps the file open";

/** Runs the emptyDir migration on `env` (2 nodes, lpm installed, MinIO, the registry). */
export async function emptyDirMoves(env: EnvironmentInfo): Promise<void> {
  const kube = env.kube!;
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kube.kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const lpm = new LpmClient(kc);
  const ns = `e2e-vol-${crypto.randomUUID().slice(0, 6)}`;
  const [nodeA, nodeB] = [env.nodes![0].name, env.nodes![1].name];
  await createNamespace(core, ns);
  await createMinioClass(core, lpm, {
    name: CLASS,
    minio: env.minio!,
    prefix: "e2e-volumes/",
    repository: `${env.registry!.host}/lpm/e2e-volumes`,
    reuse: true,
  });
  try {
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: "reader" },
        spec: {
          nodeName: nodeA,
          containers: [{
            name: "app",
            image: env.nodeImages!.busybox,
            command: ["sh", "-c", SCRIPT],
            volumeMounts: [{ name: "data", mountPath: "/data" }, {
              name: "shm",
              mountPath: "/shm",
            }],
          }],
          volumes: [{ name: "data", emptyDir: {} }, {
            name: "shm",
            emptyDir: { medium: "Memory" },
          }],
        },
      },
    });
    const lines = async (pod: string) =>
      String(await core.readNamespacedPodLog({ name: pod, namespace: ns, container: "app" }))
        .split("\n").map((l) => l.trim().split(" ")).filter((f) => /^\d+$/.test(f[0]));
    // Far enough that a cold restart could not have counted as high by the time we look.
    await waitFor(async () => (await lines("reader")).length >= 15, {
      what: "the reader to count to 15",
      timeoutMs: 60_000,
    });
    const md5 = (pod: string) =>
      exec(kube.kubeconfig, ns, pod, ["/bin/busybox", "md5sum", "/data/seed", "/shm/note"]);
    const before = await md5("reader");
    assertStringIncludes(before, "/data/seed");
    const sourceCount = Number((await lines("reader")).at(-1)![0]);

    await lpm.create("podmigrations", ns, {
      apiVersion: "lpm.my.domain/v1",
      kind: "PodMigration",
      metadata: { name: "move-reader", namespace: ns },
      spec: { podName: "reader", targetNode: nodeB, storageClassName: CLASS },
    });
    const pm = await waitFor(async () => {
      const m = await lpm.get<PodMigration>("podmigrations", ns, "move-reader");
      return m?.status?.phase === "Succeeded" || m?.status?.phase === "Failed" ? m : undefined;
    }, { what: "the migration to finish", timeoutMs: 120_000, intervalMs: 250 });
    assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
    const restored = pm.status!.restoredPodName!;
    const cc = await lpm.get<ContainerCheckpoint>("containercheckpoints", ns, "move-reader-app");
    assertEquals(cc?.status?.volumes?.names, ["data", "shm"]);
    assertGreater(cc!.status!.volumes!.size, 588_000, "100k lines of seq are carried");
    const pod = await waitFor(async () => {
      const p = await core.readNamespacedPod({ name: restored, namespace: ns });
      return p.status?.phase === "Running" ? p : undefined;
    }, { what: "the restored pod to run", timeoutMs: 60_000 });
    assertEquals(pod.spec?.nodeName, nodeB);
    const init = pod.status?.initContainerStatuses?.find((s) => s.name === "lpm-restore-volumes");
    assertEquals(init?.state?.terminated?.exitCode, 0, "the volume init container copied");

    // The same contents, read on the target.
    assertEquals(await md5(restored), before);
    // The same process: its descriptor 3 still names the carried file...
    const fd = await exec(kube.kubeconfig, ns, restored, [
      "/bin/busybox",
      "readlink",
      "/proc/1/fd/3",
    ]);
    assertStringIncludes(fd, "/data/seed");
    // ...and it keeps counting from its checkpointed count while reading the volumes.
    // (The restored container's log may begin with the source's replayed lines.)
    await new Promise((r) => setTimeout(r, 1500));
    const after = await lines(restored);
    const counts = after.map((f) => Number(f[0]));
    assert(counts.length >= 4, `restored output: ${JSON.stringify(after)}`);
    assertGreater(counts.at(-1)!, sourceCount, "the count goes on past the source's");
    for (let i = 1; i < counts.length; i++) {
      assertEquals(counts[i], counts[i - 1] + 1, `no restart, no gap: ${counts.join(",")}`);
    }
    for (const f of after.slice(-3)) {
      assertEquals(f[1], "588895", "the process reads the whole carried seed file");
      assertEquals(f[2], "carried-in-memory", "the process reads the carried tmpfs note");
    }
    console.error(`emptyDir migration timings: ${JSON.stringify(pm.status?.timings)}`);
  } finally {
    await core.deleteNamespace({ name: ns }).catch(() => {});
  }
}
