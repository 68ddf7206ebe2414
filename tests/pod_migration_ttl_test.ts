/**
 * `spec.ttlSecondsAfterFinished` on the real nodes: a Succeeded migration is
 * deleted that long after it finished, its PodCheckpoint with it, while the
 * restored pod (the workload) keeps running and counting; a Failed one (a
 * pod that does not exist) with a TTL of 0 is deleted at once.
 */
import { assert, assertEquals } from "@std/assert";
import "../kube/http1.ts";
import { createMigration, deleteNamespaceAndWait, openWorkspace } from "../testing/e2e.ts";
import { envTest, testEnv } from "../testing/env.ts";
import { waitFor } from "../localenv/mod.ts";
import { counterPod } from "../testing/counter_log.ts";
import type { PodCheckpoint, PodMigration } from "../api/mod.ts";

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name:
    "ttl: a finished migration is deleted after spec.ttlSecondsAfterFinished with its checkpoint; the restored pod stays",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const env = testEnv();
    const id = crypto.randomUUID().slice(0, 6);
    const { core, lpm, ns } = await openWorkspace(env, {
      ns: `ttl-${id}`,
      storageClass: { name: `ttl-${id}`, prefix: `ttl-${id}/`, repository: `lpm/ttl-${id}` },
    });
    const count = async (pod: string) => {
      const log = String(await core.readNamespacedPodLog({ name: pod, namespace: ns }));
      return Number(log.trim().split("\n").at(-1)?.match(/^\d+$/)?.[0] ?? 0);
    };
    const get = (name: string) => lpm.get<PodMigration>("podmigrations", ns, name);
    try {
      // A migration that fails at once (no such pod), TTL 0: gone as soon as it is Failed.
      await createMigration(lpm, { namespace: ns, name: "fails" }, {
        pod: "no-such-pod",
        target: env.nodes![1].name,
        storageClassName: `ttl-${id}`,
        extra: { ttlSecondsAfterFinished: 0 },
      });
      await waitFor(async () => (await get("fails")) === undefined, {
        what: "the failed migration with a TTL of 0 to be deleted",
        timeoutMs: 60_000,
      });

      await core.createNamespacedPod({
        namespace: ns,
        body: counterPod("app", env.nodes![0].name, ["c"], env.nodeImages!.busybox),
      });
      await waitFor(async () => (await count("app").catch(() => 0)) >= 3, {
        what: "the pod to count",
        timeoutMs: 60_000,
      });
      await createMigration(lpm, { namespace: ns, name: "moves" }, {
        pod: "app",
        target: env.nodes![1].name,
        storageClassName: `ttl-${id}`,
        extra: { ttlSecondsAfterFinished: 5 },
      });
      const pm = await waitFor(async () => {
        const m = await get("moves");
        return m?.status?.phase === "Succeeded" || m?.status?.phase === "Failed" ? m : undefined;
      }, { what: "the migration to finish", timeoutMs: 120_000, intervalMs: 250 });
      assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
      const restored = pm.status!.restoredPodName!;
      const pcs = async () => (await lpm.list<PodCheckpoint>("podcheckpoints", ns)).length;
      assertEquals(await pcs(), 1, "the migration's PodCheckpoint while it is kept");
      // Still there well inside its TTL (measured from status.completionTime).
      const ended = Date.parse(pm.status!.completionTime!);
      if (Date.now() - ended < 3000) assert(await get("moves"), "deleted before its TTL");
      await waitFor(async () => (await get("moves")) === undefined, {
        what: "the migration to be deleted after its TTL",
        timeoutMs: 60_000,
      });
      const gone = Date.now() - ended;
      assert(gone >= 5000, `deleted ${gone} ms after it finished, before its TTL of 5 s`);
      await waitFor(async () => (await pcs()) === 0, {
        what: "its PodCheckpoint to be deleted with it",
        timeoutMs: 60_000,
      });
      // The workload stays and goes on counting.
      const before = await count(restored);
      await waitFor(async () => (await count(restored)) > before + 2, {
        what: "the restored pod to go on counting",
        timeoutMs: 30_000,
      });
      const pod = await core.readNamespacedPod({ name: restored, namespace: ns });
      assertEquals(pod.status?.phase, "Running");
      assertEquals(pod.metadata?.deletionTimestamp, undefined);
    } finally {
      await deleteNamespaceAndWait(core, ns);
      await lpm.delete("checkpointstorageclasses", "", `ttl-${id}`).catch(() => {});
    }
  },
});
