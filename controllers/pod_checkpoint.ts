/**
 * The PodCheckpoint reconciler: one ContainerCheckpoint per container of the
 * pod (owned by the PodCheckpoint, so they go when it goes), and a status
 * that sums theirs up: Failed as soon as one fails, Succeeded when all have.
 * @module
 */
import type { ContainerCheckpoint, PodCheckpoint } from "../api/mod.ts";
import { apiStatus, controllerRef } from "./lpm_client.ts";
import type { ReconcilerDeps } from "./deps.ts";
import { type Reconcile, type ReconcileResult, splitKey } from "./runtime/controller.ts";
import type { Logger } from "./runtime/log.ts";
import { type Condition, isTerminal, setCondition } from "./_status.ts";

type Status = NonNullable<PodCheckpoint["status"]>;

/** Label on each ContainerCheckpoint: its PodCheckpoint. */
export const POD_CHECKPOINT_LABEL = "lpm.my.domain/pod-checkpoint";

/** Name of the ContainerCheckpoint for `container` of PodCheckpoint `pc` (≤ 253 chars). */
export function containerCheckpointName(pc: string, container: string): string {
  return `${pc}-${container}`.slice(0, 253).replace(/[-.]+$/, "");
}

/** Builds the PodCheckpoint reconcile function. */
export function podCheckpointReconciler(deps: ReconcilerDeps): Reconcile {
  return async (key: string, _log: Logger): Promise<ReconcileResult> => {
    const { namespace, name } = splitKey(key);
    const pc = await deps.lpm.get<PodCheckpoint>("podcheckpoints", namespace, name);
    if (!pc || pc.metadata?.deletionTimestamp) return;
    const before = JSON.stringify(pc.status ?? {});
    const status: Status = structuredClone(pc.status ?? {}) as Status;
    if (isTerminal(status.phase)) return;
    const now = deps.now();
    const conditions = (status.conditions ??= []) as Condition[];
    try {
      status.phase ??= "Pending";
      let names = pc.spec.containers;
      if (!names?.length) {
        try {
          const pod = await deps.core.readNamespacedPod({ name: pc.spec.podName, namespace });
          names = pod.spec?.containers.map((c) => c.name) ?? [];
          status.nodeName = pod.spec?.nodeName;
        } catch (err) {
          if (apiStatus(err) !== 404) throw err;
          status.phase = "Failed";
          status.message = `Pod "${namespace}/${pc.spec.podName}" does not exist`;
          setCondition(conditions, {
            type: "Completed",
            status: "False",
            reason: "PodNotFound",
            message: status.message,
          }, now);
          deps.events.warning(pc, "PodNotFound", status.message);
          return;
        }
      }
      const children: ContainerCheckpoint[] = [];
      for (const c of names) {
        const ccName = containerCheckpointName(name, c);
        let cc = await deps.lpm.get<ContainerCheckpoint>("containercheckpoints", namespace, ccName);
        if (!cc) {
          cc = await deps.lpm.create<ContainerCheckpoint>("containercheckpoints", namespace, {
            apiVersion: "lpm.my.domain/v1",
            kind: "ContainerCheckpoint",
            metadata: {
              name: ccName,
              namespace,
              labels: { [POD_CHECKPOINT_LABEL]: name },
              ownerReferences: [controllerRef(pc)],
            },
            spec: {
              podName: pc.spec.podName,
              containerName: c,
              storageClassName: pc.spec.storageClassName,
            },
          } as ContainerCheckpoint);
          deps.events.normal(
            pc,
            "ContainerCheckpointCreated",
            `Created ContainerCheckpoint "${ccName}"`,
          );
        }
        children.push(cc);
      }
      status.containers = children.map((cc) => ({
        name: cc.spec.containerName,
        containerCheckpointName: cc.metadata!.name!,
        phase: cc.status?.phase ?? "Pending",
        image: cc.status?.image?.reference,
        ...(cc.status?.volumes ? { volumes: cc.status.volumes } : {}),
        message: cc.status?.message,
      }));
      status.nodeName ??= children.find((c) => c.status?.nodeName)?.status?.nodeName;
      const failed = children.find((c) => c.status?.phase === "Failed");
      if (failed) {
        status.phase = "Failed";
        status.message = `Container "${failed.spec.containerName}": ${
          failed.status?.message ?? "checkpoint failed"
        }`;
        status.completionTime = now.toISOString();
        setCondition(conditions, {
          type: "Completed",
          status: "False",
          reason: "ContainerCheckpointFailed",
          message: status.message,
        }, now);
        deps.events.warning(pc, "CheckpointFailed", status.message);
      } else if (children.every((c) => c.status?.phase === "Succeeded")) {
        status.phase = "Succeeded";
        status.message = `${children.length} container(s) checkpointed`;
        status.completionTime = now.toISOString();
        setCondition(conditions, {
          type: "Completed",
          status: "True",
          reason: "AllContainersCheckpointed",
          message: status.message,
        }, now);
        deps.events.normal(pc, "CheckpointSucceeded", status.message);
      } else {
        status.phase = "Running";
        const done = children.filter((c) => c.status?.phase === "Succeeded").length;
        status.message = `${done}/${children.length} container(s) checkpointed`;
      }
    } finally {
      status.observedGeneration = pc.metadata?.generation;
      if (JSON.stringify(status) !== before) {
        await deps.lpm.patchStatus("podcheckpoints", namespace, name, status);
      }
    }
  };
}
