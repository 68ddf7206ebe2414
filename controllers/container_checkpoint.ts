/**
 * The ContainerCheckpoint reconciler: asks the agent on the pod's node to
 * checkpoint one container, then follows the agent's operation until it ends,
 * copying progress and the result (archive, image, CRIU statistics) into the
 * status. It never waits on the agent inside a reconcile: it starts the
 * operation, records its id, and comes back.
 * @module
 */
import type { ContainerCheckpoint } from "../api/mod.ts";
import { apiMessage } from "../kube/lpm_client.ts";
import {
  CC_FINALIZER,
  reconcileContainerCheckpointDelete,
  standalone,
} from "./container_checkpoint_delete.ts";
import type { ReconcilerDeps } from "./deps.ts";
import type { OperationStatus } from "../contract/agent.ts";
import type { Reconcile, ReconcileResult } from "./runtime/controller.ts";
import { objectReconciler } from "./_reconcile.ts";
import type { Logger } from "../base/log.ts";
import { type Condition, isTerminal, setCondition } from "./_status.ts";
import { defaultClassName } from "./default_class.ts";
import { apiCriuStats } from "./criu_stats.ts";
import { operationPollMs } from "./frozen_poll.ts";
import { ProgressPacer } from "./checkpoint_progress.ts";

/** This controller's pace of progress-only patches, per ContainerCheckpoint. */
const pacer = new ProgressPacer();

type Status = NonNullable<ContainerCheckpoint["status"]>;

/** Condition types this reconciler owns. */
export const CC_CONDITIONS = { agentReachable: "AgentReachable", completed: "Completed" } as const;

/** Builds the ContainerCheckpoint reconcile function. */
export function containerCheckpointReconciler(deps: ReconcilerDeps): Reconcile {
  return objectReconciler<ContainerCheckpoint>(deps, {
    plural: "containercheckpoints",
    // A standalone checkpoint's data goes with it (a PodCheckpoint's goes with the PodCheckpoint).
    finalizer: (cc) => standalone(cc) ? CC_FINALIZER : undefined,
    reconcileDelete: (cc, log) => reconcileContainerCheckpointDelete(deps, cc, log),
    reconcileNormal: async (cc, status, log) => {
      if (isTerminal(status.phase)) return;
      return status.operationId
        ? await follow(deps, cc, status, log)
        : await start(deps, cc, status, log);
    },
  });
}

function fail(
  deps: ReconcilerDeps,
  cc: ContainerCheckpoint,
  status: Status,
  reason: string,
  message: string,
) {
  const now = deps.now();
  status.phase = "Failed";
  status.message = message;
  status.completionTime = now.toISOString();
  setCondition((status.conditions ??= []) as Condition[], {
    type: CC_CONDITIONS.completed,
    status: "False",
    reason,
    message,
    observedGeneration: cc.metadata?.generation,
  }, now);
  deps.events.warning(cc, reason, message);
}

async function start(
  deps: ReconcilerDeps,
  cc: ContainerCheckpoint,
  status: Status,
  log: Logger,
): Promise<ReconcileResult> {
  const ns = cc.metadata!.namespace!;
  const { podName, containerName } = cc.spec;
  let storageClassName = cc.spec.storageClassName;
  status.phase ??= "Pending";
  const pod = await deps.cache.pod(ns, podName);
  if (!pod) {
    fail(deps, cc, status, "PodNotFound", `Pod "${ns}/${podName}" does not exist`);
    return;
  }
  const nodeName = pod.spec?.nodeName;
  if (!nodeName) {
    fail(deps, cc, status, "PodNotScheduled", `Pod "${ns}/${podName}" is not scheduled to a node`);
    return;
  }
  if (!pod.spec?.containers.some((c) => c.name === containerName)) {
    fail(
      deps,
      cc,
      status,
      "ContainerNotFound",
      `Pod "${ns}/${podName}" has no container "${containerName}"`,
    );
    return;
  }
  const cs = pod.status?.containerStatuses?.find((c) => c.name === containerName);
  if (!cs?.state?.running) {
    fail(
      deps,
      cc,
      status,
      "ContainerNotRunning",
      `Container "${containerName}" of pod "${ns}/${podName}" is not running`,
    );
    return;
  }
  if (!storageClassName) {
    const d = await defaultClassName(deps);
    if ("problem" in d) {
      fail(deps, cc, status, "NoStorageClass", d.problem);
      return;
    }
    storageClassName = d.name;
  }
  status.nodeName = nodeName;
  let op: OperationStatus;
  try {
    const agent = await deps.agents.forNode(nodeName);
    // The object's uid is the idempotency key: a retry after a lost reply
    // finds the same operation instead of checkpointing twice.
    op = await agent.checkpoint({
      operationId: cc.metadata!.uid!,
      // The containers of one PodCheckpoint share a storage prefix: a restore can name it.
      checkpointId: cc.metadata?.ownerReferences?.find((o) => o.kind === "PodCheckpoint")?.uid,
      namespace: ns,
      pod: podName,
      container: containerName,
      storageClassName,
      // The runtime's dump leaves the container as it was: running, or frozen
      // (spec.freezeKey: the PodCheckpoint froze the whole pod first).
      leaveRunning: true,
      podJson: JSON.stringify({ metadata: pod.metadata, spec: pod.spec }),
      freezeKey: cc.spec.freezeKey,
      preCopyOperationId: cc.spec.preCopyOperationId,
    });
  } catch (err) {
    // A final checkpoint of a pod that is not frozen (any more) must not be retried.
    if ((err as { code?: number }).code === 9 /* FAILED_PRECONDITION */) {
      fail(deps, cc, status, "NotFrozen", apiMessage(err));
      return;
    }
    const message = `Cannot start the checkpoint on the agent of node "${nodeName}": ${
      apiMessage(err)
    }`;
    setCondition((status.conditions ??= []) as Condition[], {
      type: CC_CONDITIONS.agentReachable,
      status: "False",
      reason: "AgentCallFailed",
      message,
    }, deps.now());
    status.message = message;
    throw new Error(message); // retried with backoff; the migration's timeout bounds it
  }
  setCondition((status.conditions ??= []) as Condition[], {
    type: CC_CONDITIONS.agentReachable,
    status: "True",
    reason: "OperationStarted",
    message: `Operation "${op.id}" started on node "${nodeName}"`,
  }, deps.now());
  status.operationId = op.id;
  status.phase = "Running";
  status.message = `Checkpointing container "${containerName}" on node "${nodeName}"`;
  deps.events.normal(cc, "CheckpointStarted", status.message);
  log.info("checkpoint operation started", { node: nodeName, operation: op.id });
  return apply(deps, cc, status, op);
}

async function follow(
  deps: ReconcilerDeps,
  cc: ContainerCheckpoint,
  status: Status,
  _log: Logger,
): Promise<ReconcileResult> {
  let op: OperationStatus;
  try {
    const agent = await deps.agents.forNode(status.nodeName!);
    op = await agent.getOperation(status.operationId!);
  } catch (err) {
    const msg = apiMessage(err);
    if (/not found/i.test(msg)) {
      fail(
        deps,
        cc,
        status,
        "OperationLost",
        `The agent on node "${status.nodeName}" no longer knows operation "${status.operationId}": ${msg}`,
      );
      return;
    }
    setCondition((status.conditions ??= []) as Condition[], {
      type: CC_CONDITIONS.agentReachable,
      status: "False",
      reason: "AgentCallFailed",
      message: `Cannot read operation "${status.operationId}" on node "${status.nodeName}": ${msg}`,
    }, deps.now());
    throw err;
  }
  return apply(deps, cc, status, op);
}

function apply(
  deps: ReconcilerDeps,
  cc: ContainerCheckpoint,
  status: Status,
  op: OperationStatus,
): ReconcileResult {
  const key = cc.metadata?.uid ?? `${cc.metadata?.namespace}/${cc.metadata?.name}`;
  const next = {
    phase: op.step ?? op.phase,
    bytesDone: op.bytesDone ?? 0,
    bytesTotal: op.bytesTotal ?? 0,
  };
  const ended = op.phase === "Failed" || op.phase === "Succeeded";
  status.progress = ended ? next : pacer.pace(key, status.progress, next, deps.now().getTime());
  if (ended) pacer.forget(key);
  if (op.phase === "Failed") {
    fail(deps, cc, status, "CheckpointFailed", op.message || `Operation "${op.id}" failed`);
    return;
  }
  if (op.phase !== "Succeeded") {
    return { requeueAfterMs: operationPollMs(deps.pollMs, !!cc.spec.freezeKey) };
  }
  const r = op.result;
  if (!r) {
    fail(deps, cc, status, "NoResult", `Operation "${op.id}" succeeded without a result`);
    return;
  }
  const now = deps.now();
  status.archive = r.archive;
  deps.metrics?.checkpointBytes.inc({ class: r.archive.storageClassName }, r.archive.size);
  status.image = r.image;
  if (r.criuStats) status.criuStats = apiCriuStats(r.criuStats);
  if (r.volumes) status.volumes = r.volumes;
  if (r.runtime) status.runtime = r.runtime;
  status.checkpointTime = r.checkpointTime ?? now.toISOString();
  status.phase = "Succeeded";
  status.completionTime = now.toISOString();
  status.message = `Checkpoint image ${r.image.reference}`;
  setCondition((status.conditions ??= []) as Condition[], {
    type: CC_CONDITIONS.completed,
    status: "True",
    reason: "CheckpointStored",
    message:
      `Archive "${r.archive.key}" (${r.archive.size} bytes) stored; image ${r.image.reference} pushed`,
    observedGeneration: cc.metadata?.generation,
  }, now);
  deps.events.normal(cc, "CheckpointSucceeded", status.message);
}
