/**
 * PodMigration phases, one step per call: Pending (validate) ->
 * Checkpointing (a PodCheckpoint) -> Transferring (pre-pull the checkpoint
 * images on the target) -> Restoring (the restored pod, then the source's
 * hand-over) -> Succeeded | Failed. Every failure before the restored pod
 * runs leaves the source pod running and says why; while a failing
 * migration's restored pod cannot be deleted, the source stays frozen and
 * the migration is not Failed yet (failMigration).
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import type {
  CheckpointStorageClass,
  ContainerCheckpoint,
  PodCheckpoint,
  PodMigration,
} from "../api/mod.ts";
import { apiMessage, apiStatus, controllerRef, createOrGet } from "../kube/lpm_client.ts";
import { MIGRATION_LABEL, restoredPodName } from "./restored_pod.ts";
import { PC_FINALIZER } from "./pod_checkpoint_delete.ts";
import type { ReconcilerDeps } from "./deps.ts";
import type { ReconcileResult } from "./runtime/controller.ts";
import type { Logger } from "../base/log.ts";
import { isTerminal, phaseTime, setPhase } from "./_status.ts";
import {
  nodeReady,
  runtimeSupport,
  schedulingMismatch,
  unsupportedReason,
} from "./restored_pod.ts";
import { stepRestoring } from "./pod_migration_restore.ts";
import { renewSourceFreeze, sourceFreeze, sourceFreezeAction } from "./pod_migration_freeze.ts";
import {
  cond,
  getCondition,
  MigrationFailure,
  type MigrationStatus,
  PM_CONDITIONS,
  targetNodeOf,
} from "./pod_migration_status.ts";
import { DEFAULT_FREEZE_DEADLINE_S } from "./pod_freeze.ts";
import { defaultClasses } from "./default_class.ts";
import { agentHealthWithin, askAgentWithin } from "../contract/agent.ts";
import { criuKernelProblem } from "./criu_kernel.ts";
import { SLOT_PHASES } from "./migration_limits.ts";
import { chooseTargetNode } from "./target_node.ts";
import { operationPollMs } from "./frozen_poll.ts";
import { warmBaseImages } from "./warm_images.ts";
import { pullOnTarget, targetPull } from "./migration_pull.ts";
import { preCopyClassProblem, stepPreCopying } from "./pod_migration_pre_copy.ts";

const DEFAULT_TIMEOUT_S = 600;

/** Runs the step of the current phase. */
export async function runPhase(
  deps: ReconcilerDeps,
  pm: PodMigration,
  status: MigrationStatus,
  log: Logger,
): Promise<ReconcileResult> {
  const now = deps.now();
  if (!status.phase) setPhase(status, "Pending", now);
  if (status.phase === "Succeeded" || status.phase === "Failed") return;
  try {
    // A failure whose restored pod is not deleted yet goes on failing as it began (failMigration).
    const pending = pendingFailure(status);
    if (pending) throw pending;
    const timeoutS = pm.spec.timeoutSeconds ?? DEFAULT_TIMEOUT_S;
    const started = status.startTime ? new Date(status.startTime) : undefined;
    if (started && now.getTime() - started.getTime() > timeoutS * 1000) {
      throw new MigrationFailure(
        "Timeout",
        `Migration did not finish within ${timeoutS}s (spec.timeoutSeconds); it stopped in phase ${status.phase}`,
      );
    }
    // A step that moves the phase on is followed at once by the next phase's
    // step in this reconcile, so one status patch carries both (Pending ->
    // Checkpointing with its PodCheckpoint, Transferring -> Restoring with its
    // pod): two patches fewer per migration. Bounded: five phases at most.
    for (let i = 0; i < 5; i++) {
      const phase: string | undefined = status.phase;
      const result = await stepOf(deps, pm, status, log);
      if (status.phase === phase || isTerminal(status.phase)) return result;
    }
  } catch (err) {
    if (!(err instanceof MigrationFailure)) throw err;
    await failMigration(deps, pm, status, err, log);
  }
}

/** The step of the migration's current phase. */
function stepOf(
  deps: ReconcilerDeps,
  pm: PodMigration,
  status: MigrationStatus,
  log: Logger,
): Promise<ReconcileResult> {
  switch (status.phase) {
    case "Pending":
      return stepPending(deps, pm, status);
    case "PreCopying":
      return stepPreCopying(deps, pm, status);
    case "Checkpointing":
      return stepCheckpointing(deps, pm, status);
    case "Transferring":
      return stepTransferring(deps, pm, status);
    case "Restoring":
      return stepRestoring(deps, pm, status, log);
  }
  return Promise.resolve(undefined);
}

/**
 * Removes the restored pod of a migration that is failing. Its name is
 * derived from the migration's uid, and a controller killed between
 * creating it and recording `status.restoredPodName` left it unrecorded (a
 * clean-clone CI run found one left behind): without a recorded name, the
 * derived one is deleted when the pod there carries this migration's label.
 * Throws when the pod may still be there (a read or DELETE that failed, not
 * with 404): the caller's reconcile retries, and the source stays frozen
 * (failMigration) or the deleted migration's finalizer waits. Returns the
 * name of the pod deleted (or already gone), recorded in the status.
 */
export async function deleteRestoredPod(
  deps: ReconcilerDeps,
  pm: PodMigration,
  status: MigrationStatus,
  log: Logger,
): Promise<string | undefined> {
  const ns = pm.metadata!.namespace!;
  let name = status.restoredPodName;
  if (!name && pm.metadata?.uid) {
    const derived = restoredPodName(pm.spec.podName, pm.metadata.uid);
    const pod = await deps.cache.pod(ns, derived).catch((err) => {
      throw new Error(
        `Cannot read pod "${ns}/${derived}" (the restored pod's name): ${apiMessage(err)}`,
        { cause: err },
      );
    });
    if (pod?.metadata?.labels?.[MIGRATION_LABEL] === pm.metadata.name) name = derived;
  }
  if (!name) return undefined;
  // Recorded: a retry checks this pod's containers on its node even once the object is gone.
  status.restoredPodName = name;
  try {
    // No grace: the source is about to run again, and only one copy may.
    await deps.core.deleteNamespacedPod({ name, namespace: ns, gracePeriodSeconds: 0 });
    log.info("deleted the restored pod of an unfinished migration", { pod: name });
    return name;
  } catch (err) {
    if (apiStatus(err) === 404) return name;
    throw new Error(`Cannot delete the restored pod "${ns}/${name}": ${apiMessage(err)}`, {
      cause: err,
    });
  }
}

/**
 * The failure a migration is still finishing: Succeeded=False while the
 * phase is not Failed yet (failMigration could not delete the restored pod).
 * Kept in the condition because its cause (a restored pod that crashed, a
 * source the deadline thawed) may not show again on the next reconcile.
 */
function pendingFailure(status: MigrationStatus): MigrationFailure | undefined {
  const c = getCondition(status, PM_CONDITIONS.succeeded);
  return c?.status === "False" ? new MigrationFailure(c.reason, c.message ?? "") : undefined;
}

/**
 * A failing migration whose restored pod could not be deleted: that pod may
 * run, so the source must not. The source stays frozen (its freeze renewed,
 * not thawed), the migration is not marked Failed, the failure is kept in
 * the Succeeded condition, and this throws so that the reconcile retries
 * the DELETE with backoff (at most 5 s apart, within any freeze deadline).
 */
async function holdFailure(
  deps: ReconcilerDeps,
  pm: PodMigration,
  status: MigrationStatus,
  f: MigrationFailure,
  deleteError: Error,
  log: Logger,
): Promise<never> {
  const now = deps.now();
  const src = pm.spec.podName;
  // A source its agent thawed anyway is recorded (DeadlineThawed); nothing more can stop it here.
  await renewSourceFreeze(deps, pm, status).catch((err) =>
    log.warn("the source's freeze was not renewed", { error: (err as Error).message })
  );
  if (getCondition(status, PM_CONDITIONS.sourceFrozen)?.status === "True") {
    cond(status, pm, now, {
      type: PM_CONDITIONS.sourceFrozen,
      status: "True",
      reason: "RestoredPodNotDeleted",
      message: `Source pod "${src}" kept frozen until its restored pod is deleted: ` +
        deleteError.message,
    });
  }
  status.message = `${f.message}; the source stays frozen until its restored pod is deleted ` +
    `(retrying): ${deleteError.message}`;
  cond(status, pm, now, {
    type: PM_CONDITIONS.succeeded,
    status: "False",
    reason: f.reason,
    message: f.message,
  });
  deps.events.warning(
    pm,
    "RestoredPodNotDeleted",
    `${deleteError.message}; source pod "${src}" stays frozen, the DELETE is retried`,
  );
  throw new Error(
    `Cannot finish failing the migration (${f.reason}): ${deleteError.message}; retrying`,
    { cause: deleteError },
  );
}

/** How long failMigration asks the target's agent whether the restored pod's containers run. */
const STILL_RUNS_TIMEOUT_MS = 3000;

/**
 * Why the source cannot be thawed yet: the deleted restored pod still has
 * running containers on the target node, as its agent reports them; "" when
 * none run, or when the agent cannot say (no agent, no answer in time: a
 * node that does not answer cannot be waited for forever).
 */
export async function restoredStillRuns(
  deps: ReconcilerDeps,
  pm: PodMigration,
  status: MigrationStatus,
  pod: string,
): Promise<string> {
  const node = status.targetNode ?? pm.spec.targetNode;
  if (!node) return "";
  const ns = pm.metadata!.namespace!;
  const running = await askAgentWithin(
    deps.agents,
    node,
    (a) => a.containerStarts?.(ns, pod),
    { timeoutMs: STILL_RUNS_TIMEOUT_MS },
  );
  if (!running?.length) return "";
  return `The restored pod "${ns}/${pod}" is deleted but its containers ` +
    `${running.map((c) => `"${c.name}"`).join(", ")} still run on node "${node}": ` +
    "waiting for its kubelet to stop them";
}

/**
 * Marks the migration Failed, removing a restored pod that is not serving,
 * then thawing the source; while that pod cannot be deleted, holdFailure.
 */
export async function failMigration(
  deps: ReconcilerDeps,
  pm: PodMigration,
  status: MigrationStatus,
  f: MigrationFailure,
  log: Logger,
): Promise<void> {
  const now = deps.now();
  let restored: string | undefined;
  try {
    restored = await deleteRestoredPod(deps, pm, status, log);
  } catch (err) {
    await holdFailure(deps, pm, status, f, err as Error, log);
  }
  let thawed = "";
  const frozen = getCondition(status, PM_CONDITIONS.sourceFrozen)?.status === "True";
  // A DELETE without grace removes the object at once; the kubelet stops the containers after.
  const stillRuns = frozen && restored ? await restoredStillRuns(deps, pm, status, restored) : "";
  if (stillRuns) await holdFailure(deps, pm, status, f, new Error(stillRuns), log);
  const freeze = frozen ? await sourceFreeze(deps, pm, status).catch(() => undefined) : undefined;
  if (freeze) {
    try {
      const s = await sourceFreezeAction(deps, freeze, "THAW");
      thawed = `; the source was thawed and goes on where it stopped (${s.state})`;
      cond(status, pm, now, {
        type: PM_CONDITIONS.sourceFrozen,
        status: "False",
        reason: "Thawed",
        message: `Source pod "${pm.spec.podName}" thawed: the migration failed before hand-over`,
      });
      deps.events.normal(pm, "SourceThawed", `Thawed source pod "${pm.spec.podName}"`);
    } catch (err) {
      thawed = `; the source could not be thawed now (${(err as Error).message}): its agent ` +
        "thaws it at the freeze deadline";
      log.warn("could not thaw the source", { error: (err as Error).message });
    }
  }
  status.message = f.message + thawed;
  status.completionTime = now.toISOString();
  cond(status, pm, now, {
    type: PM_CONDITIONS.succeeded,
    status: "False",
    reason: f.reason,
    message: status.message,
  });
  setPhase(status, "Failed", now);
  deps.metrics?.migrationFailures.inc({ reason: f.reason });
  deps.metrics?.migrationDuration.observe(
    { result: "failed" },
    (now.getTime() - new Date(status.startTime ?? now).getTime()) / 1000,
  );
  log.warn("migration failed", { reason: f.reason, message: f.message });
}

function orFail<T>(found: T | undefined, reason: string, message: string): T {
  if (found === undefined) throw new MigrationFailure(reason, message);
  return found;
}

/** Resolves the storage class: the named one, else the single default one. */
async function resolveStorageClass(
  deps: ReconcilerDeps,
  pm: PodMigration,
): Promise<CheckpointStorageClass> {
  const named = pm.spec.storageClassName;
  if (named) {
    const c = await deps.cache.get<CheckpointStorageClass>("checkpointstorageclasses", "", named);
    if (!c) {
      throw new MigrationFailure(
        "UnknownStorageClass",
        `CheckpointStorageClass "${named}" does not exist`,
      );
    }
    return c;
  }
  const defaults = await defaultClasses(deps);
  if (defaults.length === 0) {
    throw new MigrationFailure(
      "NoStorageClass",
      "spec.storageClassName is empty and no CheckpointStorageClass is marked default",
    );
  }
  if (defaults.length > 1) {
    throw new MigrationFailure(
      "AmbiguousDefaultStorageClass",
      `More than one default CheckpointStorageClass (${
        defaults.map((c) => `"${c.metadata?.name}"`).join(", ")
      }); ` +
        "set spec.storageClassName",
    );
  }
  return defaults[0];
}

async function stepPending(
  deps: ReconcilerDeps,
  pm: PodMigration,
  status: MigrationStatus,
): Promise<ReconcileResult> {
  const now = deps.now();
  const ns = pm.metadata!.namespace!;
  const { podName } = pm.spec;
  status.startTime ??= now.toISOString();
  // The Target column reads the status: a named node shows there from the start.
  if (pm.spec.targetNode) status.targetNode = pm.spec.targetNode;
  const pod: k8s.V1Pod = orFail(
    await deps.cache.pod(ns, podName),
    "PodNotFound",
    `Pod "${ns}/${podName}" does not exist`,
  );
  if (pod.metadata?.deletionTimestamp) {
    throw new MigrationFailure("PodTerminating", `Pod "${ns}/${podName}" is being deleted`);
  }
  if (pod.status?.phase !== "Running") {
    throw new MigrationFailure(
      "PodNotRunning",
      `Pod "${ns}/${podName}" is ${
        pod.status?.phase ?? "in no phase"
      }, not Running: only a running pod can be migrated`,
    );
  }
  // Reserved fields are refused rather than silently ignored.
  if (pm.spec.bandwidthLimit) {
    throw new MigrationFailure(
      "NotImplemented",
      `spec.bandwidthLimit is "${pm.spec.bandwidthLimit}": transfer limits are not implemented yet ` +
        "(leave it out)",
    );
  }
  const unsupported = unsupportedReason(pod);
  if (unsupported) throw new MigrationFailure("Unsupported", unsupported);
  const sourceNode = pod.spec?.nodeName ?? "";
  const target = await resolveTarget(deps, pm, pod);
  const targetNode = target.metadata!.name!;
  status.targetNode = targetNode;
  const source = await deps.cache.node(sourceNode);
  if (!source) {
    throw new Error(`Source node "${sourceNode}" of pod "${ns}/${podName}" does not exist`);
  }
  for (const [role, node] of [["Source", source], ["Target", target]] as const) {
    const rt = runtimeSupport(node);
    if (!rt.ok) {
      throw new MigrationFailure(
        "RuntimeUnsupported",
        `${role} node "${node.metadata?.name}": ${rt.reason}`,
      );
    }
  }
  await checkNodeCriu(deps, [["Source", source], ["Target", target]]);
  const cls = await resolveStorageClass(deps, pm);
  const clsName = cls.metadata!.name!;
  // What the spec asks of the class is known before the class is validated.
  const preCopyProblem = preCopies(pm) ? preCopyClassProblem(cls) : undefined;
  if (preCopyProblem) throw new MigrationFailure("PreCopyUnsupported", preCopyProblem);
  if (cls.status?.phase === "Unavailable") {
    throw new MigrationFailure(
      "StorageClassUnavailable",
      `CheckpointStorageClass "${clsName}" is Unavailable: ${cls.status.message ?? "no message"}`,
    );
  }
  if (!cls.spec.registry?.repository) {
    throw new MigrationFailure(
      "StorageClassWithoutRegistry",
      `CheckpointStorageClass "${clsName}" has no registry: the target node restores from a checkpoint image`,
    );
  }
  if (cls.status?.phase !== "Available") {
    cond(status, pm, now, {
      type: PM_CONDITIONS.validated,
      status: "Unknown",
      reason: "WaitingForStorageClass",
      message: `Waiting for CheckpointStorageClass "${clsName}" to be validated`,
    });
    return { requeueAfterMs: 2000 };
  }
  status.sourceNode = sourceNode;
  status.storageClassName = clsName;
  // A freed slot wakes the oldest waiter of each node (manager.ts); the minute is a safety net.
  if (!await admit(deps, pm, status, sourceNode)) return { requeueAfterMs: 60_000 };
  cond(status, pm, now, {
    type: PM_CONDITIONS.validated,
    status: "True",
    reason: "Valid",
    message:
      `Pod "${ns}/${podName}" on "${sourceNode}" can move to "${targetNode}" via class "${clsName}"`,
  });
  // The base images onto the target while the source still runs (warm_images.ts).
  warmBaseImages(deps.agents, pm, pod, { targetNode });
  setPhase(status, preCopies(pm) ? "PreCopying" : "Checkpointing", now);
}

/** True when the migration pre-copies (spec.preCopy.rounds above 0). */
function preCopies(pm: PodMigration): boolean {
  return (pm.spec.preCopy?.rounds ?? 0) > 0;
}

/**
 * The target node: the one the spec names (checked: exists, Ready, not
 * cordoned, satisfies the pod's scheduling constraints), or else one chosen
 * now (target_node.ts). No fit fails the
 * migration with the reason each node was refused.
 */
async function resolveTarget(
  deps: ReconcilerDeps,
  pm: PodMigration,
  pod: k8s.V1Pod,
): Promise<k8s.V1Node> {
  const ns = pm.metadata!.namespace!;
  // A chosen node is chosen again on each pass while Pending: the cluster moves on.
  const named = pm.spec.targetNode;
  if (!named) {
    const choice = chooseTargetNode(pod, await deps.cache.nodes(), await deps.cache.pods());
    if (!choice.node) {
      throw new MigrationFailure(
        "NoTargetNode",
        `No node can take pod "${ns}/${pod.metadata?.name}": ${
          choice.refusals.join("; ") || "the cluster has no nodes"
        }`,
      );
    }
    return choice.node;
  }
  if (pod.spec?.nodeName === named) {
    throw new MigrationFailure(
      "SameNode",
      `Pod "${ns}/${pod.metadata?.name}" already runs on node "${named}"`,
    );
  }
  const target: k8s.V1Node = orFail(
    await deps.cache.node(named),
    "UnknownTargetNode",
    `Target node "${named}" does not exist`,
  );
  if (!nodeReady(target)) {
    throw new MigrationFailure("TargetNodeNotReady", `Target node "${named}" is not Ready`);
  }
  if (target.spec?.unschedulable) {
    throw new MigrationFailure(
      "TargetNodeUnschedulable",
      `Target node "${named}" is cordoned (unschedulable)`,
    );
  }
  const mismatch = schedulingMismatch(pod, target);
  if (mismatch) throw new MigrationFailure("TargetNodeMismatch", mismatch);
  return target;
}

/**
 * Takes a slot under the migration limits (migration_limits.ts), or records
 * that the migration waits for one: condition Admitted=False with the
 * reason (the first one: it is not rewritten while the migration waits),
 * and the same words in the message for `kubectl get`/`migrate`.
 */
async function admit(
  deps: ReconcilerDeps,
  pm: PodMigration,
  status: MigrationStatus,
  sourceNode: string,
): Promise<boolean> {
  const all = await deps.cache.list<PodMigration>("podmigrations");
  const key = (m: PodMigration) => `${m.metadata?.namespace}/${m.metadata?.name}`;
  const running = all.filter((m) => SLOT_PHASES.has(m.status?.phase ?? ""))
    .map((m) => ({ key: key(m), node: m.status?.sourceNode ?? "" }));
  const pending = new Set(
    all.filter((m) => (m.status?.phase ?? "Pending") === "Pending").map(key),
  );
  const r = deps.slots.admit({ key: key(pm), node: sourceNode }, { running, pending });
  const now = deps.now();
  if (!r.ok) {
    // Once in line, the first reason stays: which limit binds and its count change with every
    // slot that frees, and rewriting them cost ~11 status patches per migration in a burst
    // of 200 (deno task bench controller).
    if (getCondition(status, PM_CONDITIONS.admitted)?.reason === "WaitingForMigrationSlot") {
      return false;
    }
    status.message = `Waiting: ${r.reason}`;
    cond(status, pm, now, {
      type: PM_CONDITIONS.admitted,
      status: "False",
      reason: "WaitingForMigrationSlot",
      message: r.reason,
    });
    return false;
  }
  if (getCondition(status, PM_CONDITIONS.admitted)?.status === "False") delete status.message;
  cond(status, pm, now, {
    type: PM_CONDITIONS.admitted,
    status: "True",
    reason: "SlotFree",
    message: `Within the limits: ${deps.slots.limits.maxParallel} in the cluster, ` +
      `${deps.slots.limits.maxOutboundPerNode} leaving node "${sourceNode}"`,
  });
  return true;
}

/** How long validation waits for an agent's Health (best effort: later phases meet a dead agent). */
const HEALTH_TIMEOUT_MS = 3000;

/**
 * Refuses nodes whose CRIU is known to fail on their kernel, before anything
 * is frozen: the agent's CRIU version, its kernel (else the node's
 * `status.nodeInfo.kernelVersion`). An agent that does not answer in time
 * does not block validation.
 */
async function checkNodeCriu(
  deps: ReconcilerDeps,
  nodes: (readonly [string, k8s.V1Node])[],
): Promise<void> {
  const health = await Promise.all(
    nodes.map(([, n]) =>
      agentHealthWithin(deps.agents, n.metadata?.name ?? "", { timeoutMs: HEALTH_TIMEOUT_MS })
    ),
  );
  for (const [i, [role, node]] of nodes.entries()) {
    const h = health[i];
    const kernel = h?.kernelVersion || node.status?.nodeInfo?.kernelVersion;
    const problem = criuKernelProblem(h?.criuVersion, kernel);
    if (problem) {
      throw new MigrationFailure(
        "CriuIncompatible",
        `${role} node "${node.metadata?.name}": ${problem}`,
      );
    }
  }
}

async function stepCheckpointing(
  deps: ReconcilerDeps,
  pm: PodMigration,
  status: MigrationStatus,
): Promise<ReconcileResult> {
  const now = deps.now();
  const ns = pm.metadata!.namespace!;
  const name = pm.metadata!.name!;
  // No GET on a miss: createOrGet's AlreadyExists is the confirmation.
  let pc = await deps.cache.get<PodCheckpoint>("podcheckpoints", ns, name, { confirmMiss: false });
  if (!pc) {
    pc = await createOrGet<PodCheckpoint>(deps.lpm, "podcheckpoints", ns, {
      apiVersion: "lpm.my.domain/v1",
      kind: "PodCheckpoint",
      metadata: {
        name,
        namespace: ns,
        // Labelled as the migration's: its Normal Events are the migration's (runtime/events.ts).
        labels: { [MIGRATION_LABEL]: name },
        ownerReferences: [controllerRef(pm)],
        // Created with its finalizer: no second write to add it.
        finalizers: [PC_FINALIZER],
      },
      spec: {
        podName: pm.spec.podName,
        storageClassName: status.storageClassName,
        // Frozen from the final checkpoint on: the source never runs past it.
        leaveRunning: false,
        freezeDeadlineSeconds: pm.spec.freezeDeadlineSeconds ?? DEFAULT_FREEZE_DEADLINE_S,
        // Pre-copied: each container's final archive is made incremental against its round.
        ...(status.preCopy?.containers.length
          ? {
            preCopyOperations: Object.fromEntries(
              status.preCopy.containers.map((c) => [c.name, c.operationId]),
            ),
          }
          : {}),
      },
    } as PodCheckpoint);
  }
  status.podCheckpointRef = { name };
  if (pc.status?.frozenAt && !status.frozenAt) {
    status.frozenAt = pc.status.frozenAt;
    cond(status, pm, now, {
      type: PM_CONDITIONS.sourceFrozen,
      status: "True",
      reason: "Frozen",
      message: `Every container of "${pm.spec.podName}" is frozen on "${status.sourceNode}"`,
    });
    deps.events.normal(pm, "SourceFrozen", `Froze source pod "${pm.spec.podName}"`);
  }
  if (pc.status?.phase === "Failed") {
    if (pc.status.freeze?.state === "Thawed") {
      // Its PodCheckpoint thawed it (a container's checkpoint failed), or the
      // agent did because nobody renewed the freeze in time.
      const byDeadline = pc.status.conditions?.some((c) =>
        c.type === "Completed" && c.reason === "Thawed"
      );
      cond(status, pm, now, {
        type: PM_CONDITIONS.sourceFrozen,
        status: "False",
        reason: byDeadline ? "DeadlineThawed" : "Thawed",
        message: byDeadline
          ? `Source pod "${pm.spec.podName}" was thawed by its agent: the freeze deadline passed`
          : `Source pod "${pm.spec.podName}" thawed after its checkpoint failed`,
      });
      deps.events.normal(
        pm,
        "SourceThawed",
        `Source pod "${pm.spec.podName}" thawed${byDeadline ? " by its freeze deadline" : ""}`,
      );
    }
    throw new MigrationFailure(
      "CheckpointFailed",
      `Checkpoint failed, the source pod goes on: ${pc.status.message ?? "no message"}`,
    );
  }
  if (pc.status?.phase !== "Succeeded") return { requeueAfterMs: 2000 };
  const started = phaseTime(status, "Checkpointing") ?? now;
  status.timings = {
    ...status.timings,
    checkpointMs: now.getTime() - started.getTime(),
    ...await dumpAndUpload(deps, pm, pc),
  };
  cond(status, pm, now, {
    type: PM_CONDITIONS.checkpointed,
    status: "True",
    reason: "CheckpointImagesPushed",
    message: (pc.status.containers ?? []).map((c) => `${c.name}=${c.image}`).join(", "),
  });
  setPhase(status, "Transferring", now);
}

async function stepTransferring(
  deps: ReconcilerDeps,
  pm: PodMigration,
  status: MigrationStatus,
): Promise<ReconcileResult> {
  const now = deps.now();
  const ns = pm.metadata!.namespace!;
  const pc = await deps.cache.get<PodCheckpoint>("podcheckpoints", ns, pm.metadata!.name!);
  if (!pc) {
    throw new MigrationFailure(
      "CheckpointGone",
      `PodCheckpoint "${ns}/${pm.metadata!.name}" disappeared`,
    );
  }
  await renewSourceFreeze(deps, pm, status);
  const pull = await targetPull(deps, status, targetNodeOf(pm, status));
  let pending = 0;
  for (const c of pc.status?.containers ?? []) {
    if (!c.image) {
      throw new MigrationFailure(
        "NoCheckpointImage",
        `Container "${c.name}" has no checkpoint image`,
      );
    }
    if (!await pullOnTarget(pull, `${pm.metadata!.uid}-${c.name}`, c.image)) pending++;
  }
  // The source is frozen all along: poll the pre-pulls fast (frozen_poll.ts).
  if (pending > 0) return { requeueAfterMs: operationPollMs(deps.pollMs, true) };
  const started = phaseTime(status, "Transferring") ?? now;
  const prePullMs = now.getTime() - started.getTime();
  status.timings = { ...status.timings, prePullMs, transferMs: prePullMs };
  cond(status, pm, now, {
    type: PM_CONDITIONS.transferred,
    status: "True",
    reason: "ImagesOnTarget",
    message: `Checkpoint images are on node "${targetNodeOf(pm, status)}"`,
  });
  setPhase(status, "Restoring", now);
}

/** Dump and upload figures from the ContainerCheckpoints of a frozen checkpoint. */
async function dumpAndUpload(
  deps: ReconcilerDeps,
  pm: PodMigration,
  pc: PodCheckpoint,
): Promise<{ dumpMs?: number; uploadMs?: number }> {
  const frozenAt = pc.status?.frozenAt ? Date.parse(pc.status.frozenAt) : undefined;
  let dumped = 0;
  let upload = 0;
  for (const c of pc.status?.containers ?? []) {
    const cc = await deps.cache.get<ContainerCheckpoint>(
      "containercheckpoints",
      pm.metadata!.namespace!,
      c.containerCheckpointName,
    );
    const at = cc?.status?.checkpointTime ? Date.parse(cc.status.checkpointTime) : 0;
    const done = cc?.status?.completionTime ? Date.parse(cc.status.completionTime) : 0;
    dumped = Math.max(dumped, at);
    if (at && done) upload = Math.max(upload, done - at);
  }
  return {
    ...(frozenAt && dumped ? { dumpMs: Math.max(0, dumped - frozenAt) } : {}),
    ...(upload ? { uploadMs: upload } : {}),
  };
}
