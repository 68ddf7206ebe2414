/**
 * lpm installed the way an operator installs it: its own images in the
 * registry and `kubectl apply -k` (localenv/in_cluster.ts), on a private
 * environment with two real nodes (no host-process agent or controller).
 * A counter moves node-a -> node-b through `kubectl apply` of a PodMigration
 * and continues from where the source stopped.
 */
import "../kube/http1.ts";
import { assert, assertEquals, assertGreater } from "@std/assert";
import { kubectl, startEnvironment, waitFor } from "../localenv/mod.ts";
import { envTest } from "../testing/env.ts";
import { openWorkspace } from "../testing/e2e.ts";
import { counterCommand, counterValues } from "../testing/workloads.ts";
import type { PodMigration } from "../api/mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

envTest({ starts: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name:
    "in-cluster: kubectl apply -k installs lpm from its images; a counter migrates through kubectl apply",
  ...opts,
  async fn() {
    const env = await startEnvironment({
      parts: ["kube", "minio", "registry"],
      nodes: 2,
      inCluster: true,
    });
    try {
      const kc = env.info.kube!.kubeconfig;
      const ic = env.info.lpmInCluster!;
      console.log(
        `images: ${ic.images.map((i) => i.reference).join(", ")}; sizes ${
          JSON.stringify(ic.sizes)
        }; build ${ic.buildSeconds.toFixed(1)} s, install ${ic.installSeconds.toFixed(1)} s`,
      );
      const pods = JSON.parse(await kubectl(kc, ["-n", "lpm-system", "get", "pods", "-o", "json"]))
        .items as {
          metadata: { name: string };
          spec: { nodeName: string };
          status: { conditions?: { type: string; status: string }[] };
        }[];
      const ready = pods.filter((p) =>
        p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True")
      );
      const agents = ready.filter((p) => p.metadata.name.startsWith("lpm-agent-"));
      assertEquals(agents.map((p) => p.spec.nodeName).sort(), ["node-a", "node-b"]);
      assert(ready.some((p) => p.metadata.name.startsWith("lpm-controller-")), "controller Ready");

      const ns = `ic-${crypto.randomUUID().slice(0, 6)}`;
      const { core } = await openWorkspace(env.info, {
        ns,
        storageClass: { name: "ic-minio", prefix: "ic/", repository: "lpm/ic" },
      });
      await core.createNamespacedPod({
        namespace: ns,
        body: {
          metadata: { name: "counter" },
          spec: {
            nodeName: "node-a",
            containers: [{
              name: "counter",
              image: env.info.nodeImages!.busybox,
              command: counterCommand(0.3),
            }],
          },
        },
      });
      await waitFor(async () => {
        const v = await counterValues(core, ns, "counter").catch(() => []);
        return (v.at(-1) ?? 0) >= 5;
      }, { what: "the counter to count", timeoutMs: 60_000 });
      await kubectl(
        kc,
        ["apply", "-f", "-"],
        `apiVersion: lpm.my.domain/v1
kind: PodMigration
metadata:
  name: move
  namespace: ${ns}
spec:
  podName: counter
  targetNode: node-b
  storageClassName: ic-minio
`,
      );
      const pm = await waitFor(async () => {
        const out = await kubectl(kc, ["-n", ns, "get", "podmigration", "move", "-o", "json"]);
        const p = JSON.parse(out) as PodMigration;
        return p.status?.phase === "Succeeded" || p.status?.phase === "Failed" ? p : undefined;
      }, { what: "the PodMigration to finish", timeoutMs: 180_000, intervalMs: 500 });
      assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
      const restored = pm.status!.restoredPodName!;
      const replayed = await waitFor(async () => {
        const p = await core.readNamespacedPod({ name: restored, namespace: ns });
        return p.status?.phase === "Running" ? await counterValues(core, ns, restored) : undefined;
      }, { what: "the restored pod to run", timeoutMs: 60_000 });
      await new Promise((r) => setTimeout(r, 1500));
      const all = await counterValues(core, ns, restored);
      const at = replayed.at(-1) ?? 0;
      const next = all.slice(replayed.length);
      assertGreater(at, 1, "the checkpoint carried the count");
      assert(next.length > 0, "the restored counter prints new values");
      assertEquals(
        next[0],
        at + 1,
        `counting continues from the checkpoint: at ${at}, then ${next}`,
      );
      console.log(
        `migrated: downtime ${pm.status?.timings?.downtimeMs} ms, continued at ${at + 1}`,
      );
    } finally {
      await env.stop();
    }
  },
});
