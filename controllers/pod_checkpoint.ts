/**
 * The PodCheckpoint reconciler: one ContainerCheckpoint per container of the
 * pod (owned by the PodCheckpoint, so they go when it goes), and a status
 * that sums theirs up: Failed as soon as one fails, Succeeded when all have.
 *
 * With `spec.leaveRunning: false` the whole pod is frozen by its node's agent
 * before any ContainerCheckpoint exists (each then dumps its container
 * frozen), and the freeze is renewed while the checkpoint runs. If a
 * container's checkpoint fails, the pod is thawed and goes on where it
 * stopped. When all succeed, a PodMigration that owns this checkpoint takes
 * the frozen pod over (hand-over or thaw); a PodCheckpoint of its own stops
 * the pod: the hand-over is confirmed, the pod deleted and its frozen
 * processes killed, so they never run past the checkpoint.
 *
 * A finalizer removes the checkpoint's stored data and images when the
 * PodCheckpoint is deleted (pod_checkpoint_delete.ts).
 * @module
 */
import type { ContainerCheckpoint, PodCheckpoint } from "../api/mod.ts";
import { apiStatus, controllerRef, createOrGet } from "../kube/lpm_client.ts";
import { PC_FINALIZER, reconcilePodCheckpointDelete } from "./pod_checkpoint_delete.ts";
import { defaultClassName } from "./default_class.ts";
import type { ReconcilerDeps } from "./deps.ts";
import type { Reconcile, ReconcileResult } from "./runtime/controller.ts";
import { objectReconciler } from "./_reconcile.ts";
import { type Condition, isTerminal, setCondition } from "./_status.ts";
import { controlFreeze, DEFAULT_FREEZE_DEADLINE_S, freezePod, isoOf } from "./pod_freeze.ts";
import type { FreezeRef } from "../contract/agent.ts";

type Status = NonNullable<PodCheckpoint["status"]>;

/** Label on each ContainerCheckpoint: its PodCheckpoint. */
export const POD_CHECKPOINT_LABEL = "lpm.my.domain/pod-checkpoint";

/** Name of the ContainerCheckpoint for `container` of PodCheckpoint `pc` (≤ 253 chars). */
export function containerCheckpointName(pc: string, container: string): string {
  return `${pc}-${container}`.slice(0, 253).replace(/[-.]+$/, "");
}

/** Builds the PodCheckpoint reconcile function. */
export function podCheckpointReconciler(deps: ReconcilerDeps): Reconcile {
  return objectReconciler<PodCheckpoint>(deps, {
    plural: "podcheckpoints",
    // Its stored data and images go with it (unless the class retains them).
    finalizer: () => PC_FINALIZER,
    reconcileDelete: (pc, log) => reconcilePodCheckpointDelete(deps, pc, log),
    reconcileNormal: (pc, status) => step(deps, pc, status),
  });
}

/** One step of a PodCheckpoint: freeze, create its ContainerCheckpoints, sum up theirs. */
async function step(
  deps: ReconcilerDeps,
  pc: PodCheckpoint,
  status: Status,
): Promise<ReconcileResult> {
  if (isTerminal(status.phase)) return;
  const namespace = pc.metadata!.namespace!;
  const name = pc.metadata!.name!;
  const now = deps.now();
  const conditions = (status.conditions ??= []) as Condition[];
  const freezing = pc.spec.leaveRunning === false;
  const ref: FreezeRef = { key: pc.metadata!.uid!, namespace, pod: pc.spec.podName };
  status.phase ??= "Pending";
  let names = pc.spec.containers;
  if (freezing && !status.freeze) {
    // Freeze first: no container is dumped before every one is frozen.
    const pod = await deps.cache.pod(namespace, pc.spec.podName);
    if (!pod || pod.status?.phase !== "Running" || !pod.spec?.nodeName) {
      status.phase = "Failed";
      status.message = `Pod "${namespace}/${pc.spec.podName}" ${
        pod ? "is not running" : "does not exist"
      }: nothing to freeze`;
      setCondition(conditions, {
        type: "Completed",
        status: "False",
        reason: pod ? "PodNotRunning" : "PodNotFound",
        message: status.message,
      }, now);
      deps.events.warning(pc, "CheckpointFailed", status.message);
      return;
    }
    status.nodeName = pod.spec.nodeName;
    const f = await freezePod(
      deps,
      pod.spec.nodeName,
      ref,
      pc.spec.freezeDeadlineSeconds ?? DEFAULT_FREEZE_DEADLINE_S,
    );
    if (f.state !== "frozen") {
      throw new Error(
        `The agent did not freeze pod "${namespace}/${pc.spec.podName}": ${f.state} ${
          f.message ?? ""
        }`,
      );
    }
    status.frozenAt = isoOf(f.frozenAtMs);
    status.freeze = { key: ref.key, state: "Frozen", deadline: isoOf(f.deadlineMs) };
    setCondition(conditions, {
      type: "Frozen",
      status: "True",
      reason: "PodFrozen",
      message:
        `Every container of pod "${namespace}/${pc.spec.podName}" is frozen on node "${pod.spec.nodeName}"`,
    }, now);
    deps.events.normal(
      pc,
      "PodFrozen",
      `Froze pod "${pc.spec.podName}" on "${pod.spec.nodeName}"`,
    );
  }
  if (!names?.length) {
    const pod = await deps.cache.pod(namespace, pc.spec.podName);
    if (pod) {
      names = pod.spec?.containers.map((c) => c.name) ?? [];
      status.nodeName = pod.spec?.nodeName;
    } else {
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
  // Every container in one class: the default one when the spec names none.
  let className = pc.spec.storageClassName;
  for (const c of names) {
    const ccName = containerCheckpointName(name, c);
    let cc = await deps.cache.get<ContainerCheckpoint>(
      "containercheckpoints",
      namespace,
      ccName,
    );
    if (!cc) {
      if (!className) {
        // Without one the ContainerCheckpoint fails and says why (and this one with it).
        const d = await defaultClassName(deps);
        if ("name" in d) className = d.name;
      }
      cc = await createOrGet<ContainerCheckpoint>(deps.lpm, "containercheckpoints", namespace, {
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
          storageClassName: className,
          ...(freezing ? { freezeKey: ref.key } : {}),
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
    if (status.freeze?.state === "Frozen") {
      // The source goes on where it stopped.
      status.message += `; ${await endFreeze(deps, pc, status, ref, "THAW")}`;
    }
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
    const migration = pc.metadata?.ownerReferences?.some((o) =>
      o.controller && o.kind === "PodMigration"
    );
    if (status.freeze?.state === "Frozen" && !migration) {
      status.message += `; ${await stopPod(deps, pc, status, ref)}`;
    } else if (status.freeze?.state === "Frozen") {
      status.message += "; the pod stays frozen for its migration";
    }
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
    if (status.freeze?.state === "Frozen") {
      // Renew while working: a controller that stops renewing lets the agent thaw the pod.
      const f = await controlFreeze(
        deps,
        status.nodeName!,
        ref,
        "EXTEND",
        pc.spec.freezeDeadlineSeconds ?? DEFAULT_FREEZE_DEADLINE_S,
      );
      if (f.state === "frozen") {
        status.freeze.deadline = isoOf(f.deadlineMs);
      } else {
        status.freeze.state = "Thawed";
        status.phase = "Failed";
        status.message = `Pod "${namespace}/${pc.spec.podName}" is no longer frozen (${f.state}${
          f.message ? `: ${f.message}` : ""
        }): its checkpoint is not its final state`;
        status.completionTime = now.toISOString();
        setCondition(conditions, {
          type: "Completed",
          status: "False",
          reason: "Thawed",
          message: status.message,
        }, now);
        deps.events.warning(pc, "CheckpointFailed", status.message);
        return;
      }
      return { requeueAfterMs: 5000 };
    }
  }
}

/** Ends a freeze with THAW and records it; returns a sentence for the status message. */
async function endFreeze(
  deps: ReconcilerDeps,
  pc: PodCheckpoint,
  status: Status,
  ref: FreezeRef,
  action: "THAW",
): Promise<string> {
  try {
    const f = await controlFreeze(deps, status.nodeName!, ref, action);
    status.freeze = { key: ref.key, state: "Thawed" };
    setCondition((status.conditions ??= []) as Condition[], {
      type: "Frozen",
      status: "False",
      reason: "Thawed",
      message: `Pod "${ref.namespace}/${ref.pod}" thawed: it goes on where it stopped`,
    }, deps.now());
    deps.events.normal(pc, "PodThawed", `Thawed pod "${ref.pod}" (${f.state})`);
    return "the pod was thawed and goes on";
  } catch (err) {
    return `the pod could not be thawed now (${
      (err as Error).message
    }); its agent thaws it at the deadline`;
  }
}

/** Stops a frozen pod after its own checkpoint: confirm, delete (no grace), kill. */
async function stopPod(
  deps: ReconcilerDeps,
  pc: PodCheckpoint,
  status: Status,
  ref: FreezeRef,
): Promise<string> {
  const node = status.nodeName!;
  const c = await controlFreeze(deps, node, ref, "CONFIRM");
  if (c.state !== "confirmed") {
    status.freeze = { key: ref.key, state: "Thawed" };
    return `the pod was thawed before it could be stopped (${c.state}${
      c.message ? `: ${c.message}` : ""
    })`;
  }
  // Delete first, so that the kubelet does not restart the killed containers.
  try {
    await deps.core.deleteNamespacedPod({
      name: ref.pod,
      namespace: ref.namespace,
      gracePeriodSeconds: 0,
    });
  } catch (err) {
    if (apiStatus(err) !== 404) throw err;
  }
  await controlFreeze(deps, node, ref, "KILL");
  status.freeze = { key: ref.key, state: "Stopped" };
  setCondition((status.conditions ??= []) as Condition[], {
    type: "Frozen",
    status: "False",
    reason: "Stopped",
    message: `Pod "${ref.namespace}/${ref.pod}" stopped after its checkpoint (leaveRunning false)`,
  }, deps.now());
  deps.events.normal(pc, "PodStopped", `Stopped pod "${ref.pod}" after its checkpoint`);
  return "the pod was stopped (leaveRunning false)";
}
