/**
 * A failing (or deleted) migration removes its restored pod even when the
 * controller never recorded the pod's name (killed between creating it and
 * patching `status.restoredPodName`: a clean-clone CI run of 663a070 found
 * one left behind by the chaos cell "source containerd restarted"). Against
 * the real API server: the pod at the name derived from the migration's uid
 * is deleted when it carries the migration's label, and kept when it does not.
 */
import * as k8s from "@kubernetes/client-node";
import { assertEquals } from "@std/assert";
import { envTest, requirePart } from "../testing/env.ts";
import { createNamespace, waitFor } from "../localenv/mod.ts";
import { LpmClient } from "../kube/lpm_client.ts";
import { KubeConfigFile } from "../kube/kubeconfig.ts";
import { newReconcilerDeps } from "../controllers/deps.ts";
import { deleteRestoredPod } from "../controllers/pod_migration_phases.ts";
import { MIGRATION_LABEL, restoredPodName } from "../controllers/restored_pod.ts";
import type { PodMigration } from "../api/mod.ts";
import type { AgentConnector } from "../contract/agent.ts";
import { Logger } from "../base/log.ts";

envTest({ uses: ["kube"] }, {
  name:
    "restored pod cleanup: an unrecorded restored pod of a failing migration is found by its derived name",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const kubeconfig = requirePart("kube").kubeconfig;
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kubeconfig);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const lpm = new LpmClient(kc);
    const ns = `rpc-${crypto.randomUUID().slice(0, 6)}`;
    await createNamespace(core, ns);
    // The reconcilers' own dependencies (no informers: every read is a request).
    const deps = newReconcilerDeps(KubeConfigFile.fromFile(kubeconfig), {} as AgentConnector);
    const log = new Logger({}, "warn");
    try {
      const pm = await lpm.create<PodMigration>("podmigrations", ns, {
        apiVersion: "lpm.my.domain/v1",
        kind: "PodMigration",
        metadata: { name: "move", namespace: ns },
        spec: { podName: "app", targetNode: "node-b" },
      } as PodMigration);
      const derived = restoredPodName("app", pm.metadata!.uid!);
      const pod = (labels: Record<string, string>) =>
        core.createNamespacedPod({
          namespace: ns,
          body: {
            metadata: { name: derived, labels },
            spec: { nodeName: "nowhere", containers: [{ name: "c", image: "busybox" }] },
          },
        });
      const exists = async () =>
        (await core.listNamespacedPod({ namespace: ns })).items.some((p) =>
          p.metadata?.name === derived && !p.metadata.deletionTimestamp
        );

      // Not this migration's pod (no label): kept.
      await pod({ app: "other" });
      await deleteRestoredPod(deps, pm, {}, log);
      assertEquals(await exists(), true, "a pod without the migration's label is not touched");
      await core.deleteNamespacedPod({ name: derived, namespace: ns, gracePeriodSeconds: 0 });
      await waitFor(async () => !(await exists()), { what: "the other pod to go" });

      // This migration's pod, its name never recorded: deleted.
      await pod({ [MIGRATION_LABEL]: "move" });
      await deleteRestoredPod(deps, pm, {}, log);
      await waitFor(async () => !(await exists()), { what: "the unrecorded restored pod to go" });

      // Nothing there: nothing to do, no error.
      await deleteRestoredPod(deps, pm, {}, log);
    } finally {
      await core.deleteNamespace({ name: ns }).catch(() => {});
    }
  },
});
