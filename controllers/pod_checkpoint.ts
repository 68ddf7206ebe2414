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
import { MIGRATION_LABEL } from "./restored_pod.ts";
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

/** What the steps of one PodCheckpoint reconcile share. */
interface PcContext {
  deps: ReconcilerDeps;
  pc: PodCheckpoint;
  status: Status;
  namespace: string;
  name: string;
  now: Date;
  conditions: Condition[];
  /** `spec.leaveRunning: false`: the pod is frozen before any container is dumped. */
  freezing: boolean;
  ref: FreezeRef;
  /** The containers to checkpoint: the spec's, else the pod's. */
  names?: string[];
  /** Their ContainerCheckpoints, in the order of `names`. */
  children: ContainerCheckpoint[];
}

/** Goes on to the next step; anything else ends this reconcile with that result. */
const NEXT = "next";
type PcStep = (c: PcContext) => Promise<typeof NEXT | ReconcileResult>;

/** The normal path, in order. */
const STEPS: PcStep[] = [freezeFirst, resolveContainers, ensureContainerCheckpoints, sumUp];

/** One step of a PodCheckpoint: freeze, create its ContainerCheckpoints, sum up theirs. */
async function step(
  deps: ReconcilerDeps,
  pc: PodCheckpoint,
  status: Status,
): Promise<ReconcileResult> {
  if (isTerminal(status.phase)) return;
  const namespace = pc.metadata!.namespace!;
  const c: PcContext = {
    deps,
    pc,
    status,
    namespace,
    name: pc.metadata!.name!,
    now: deps.now(),
    conditions: (status.conditions ??= []) as Condition[],
    freezing: pc.spec.leaveRunning === false,
    ref: { key: pc.metadata!.uid!, namespace, pod: pc.spec.podName },
    names: pc.spec.containers,
    children: [],
  };
  status.phase ??= "Pending";
  for (const s of STEPS) {
    const r = await s(c);
    if (r !== NEXT) return r;
  }
}

/** Marks the checkpoint Failed: its Completed condition and a warning Event. */
function fail(c: PcContext, reason: string, event: string, message: string): void {
  c.status.phase = "Failed";
  c.status.message = message;
  setCondition(c.conditions, { type: "Completed", status: "False", reason, message }, c.now);
  c.deps.events.warning(c.pc, event, message);
}

/** Freeze first: no container is dumped before every one is frozen. */
async function freezeFirst(c: PcContext): Promise<typeof NEXT | ReconcileResult> {
  const { deps, pc, status, namespace } = c;
  if (!c.freezing || status.freeze) return NEXT;
  const pod = await deps.cache.pod(namespace, pc.spec.podName);
  if (!pod || pod.status?.phase !== "Running" || !pod.spec?.nodeName) {
    fail(
      c,
      pod ? "PodNotRunning" : "PodNotFound",
      "CheckpointFailed",
      `Pod "${namespace}/${pc.spec.podName}" ${
        pod ? "is not running" : "does not exist"
      }: nothing to freeze`,
    );
    return;
  }
  status.nodeName = pod.spec.nodeName;
  const f = await freezePod(
    deps,
    pod.spec.nodeName,
    c.ref,
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
  status.freeze = { key: c.ref.key, state: "Frozen", deadline: isoOf(f.deadlineMs) };
  setCondition(c.conditions, {
    type: "Frozen",
    status: "True",
    reason: "PodFrozen",
    message:
      `Every container of pod "${namespace}/${pc.spec.podName}" is frozen on node "${pod.spec.nodeName}"`,
  }, c.now);
  deps.events.normal(
    pc,
    "PodFrozen",
    `Froze pod "${pc.spec.podName}" on "${pod.spec.nodeName}"`,
  );
  return NEXT;
}

/**
 * The containers to checkpoint: the spec's, else every container of the pod.
 * The spec's names are checked against the pod before any ContainerCheckpoint
 * exists: a name that is not a container of the pod fails the checkpoint.
 */
async function resolveContainers(c: PcContext): Promise<typeof NEXT | ReconcileResult> {
  if (c.names?.length && c.status.containers?.length) return NEXT;
  const pod = await c.deps.cache.pod(c.namespace, c.pc.spec.podName);
  if (!pod) {
    fail(
      c,
      "PodNotFound",
      "PodNotFound",
      `Pod "${c.namespace}/${c.pc.spec.podName}" does not exist`,
    );
    return;
  }
  const all = pod.spec?.containers.map((x) => x.name) ?? [];
  const unknown = c.names?.filter((n) => !all.includes(n)) ?? [];
  if (unknown.length) {
    fail(
      c,
      "ContainerNotFound",
      "CheckpointFailed",
      `spec.containers names ${unknown.map((n) => `"${n}"`).join(", ")}, not a container of pod ` +
        `"${c.namespace}/${c.pc.spec.podName}" (its containers: ${all.join(", ")})`,
    );
    return;
  }
  c.names = c.names?.length ? c.names : all;
  c.status.nodeName ??= pod.spec?.nodeName;
  return NEXT;
}

/** One ContainerCheckpoint per container (deterministic names; an existing one is kept). */
async function ensureContainerCheckpoints(c: PcContext): Promise<typeof NEXT> {
  const { deps, pc, namespace, name } = c;
  // Every container in one class: the default one when the spec names none.
  let className = pc.spec.storageClassName;
  for (const container of c.names ?? []) {
    const ccName = containerCheckpointName(name, container);
    // No GET on a miss: createOrGet's AlreadyExists is the confirmation.
    let cc = await deps.cache.get<ContainerCheckpoint>(
      "containercheckpoints",
      namespace,
      ccName,
      { confirmMiss: false },
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
          // A migration's checkpoint passes its label on (runtime/events.ts).
          labels: {
            [POD_CHECKPOINT_LABEL]: name,
            ...(pc.metadata?.labels?.[MIGRATION_LABEL]
              ? { [MIGRATION_LABEL]: pc.metadata.labels[MIGRATION_LABEL] }
              : {}),
          },
          ownerReferences: [controllerRef(pc)],
        },
        spec: {
          podName: pc.spec.podName,
          containerName: container,
          storageClassName: className,
          ...(c.freezing ? { freezeKey: c.ref.key } : {}),
          ...(pc.spec.preCopyOperations?.[container]
            ? { preCopyOperationId: pc.spec.preCopyOperations[container] }
            : {}),
        },
      } as ContainerCheckpoint);
      deps.events.normal(
        pc,
        "ContainerCheckpointCreated",
        `Created ContainerCheckpoint "${ccName}"`,
      );
    }
    c.children.push(cc);
  }
  return NEXT;
}

/** Copies the children's states into the status, then: failed, succeeded or still running. */
async function sumUp(c: PcContext): Promise<ReconcileResult> {
  const { status, children } = c;
  status.containers = children.map((cc) => ({
    name: cc.spec.containerName,
    containerCheckpointName: cc.metadata!.name!,
    phase: cc.status?.phase ?? "Pending",
    image: cc.status?.image?.reference,
    ...(cc.status?.volumes ? { volumes: cc.status.volumes } : {}),
    message: cc.status?.message,
  }));
  status.nodeName ??= children.find((x) => x.status?.nodeName)?.status?.nodeName;
  const failed = children.find((x) => x.status?.phase === "Failed");
  if (failed) return await failContainer(c, failed);
  if (children.every((x) => x.status?.phase === "Succeeded")) return await succeed(c);
  return await progress(c);
}

/** A container's checkpoint failed: so does this one, and a frozen pod is thawed. */
async function failContainer(c: PcContext, failed: ContainerCheckpoint): Promise<void> {
  const { status } = c;
  let message = `Container "${failed.spec.containerName}": ${
    failed.status?.message ?? "checkpoint failed"
  }`;
  if (status.freeze?.state === "Frozen") {
    // The source goes on where it stopped.
    message += `; ${await endFreeze(c.deps, c.pc, status, c.ref, "THAW")}`;
  }
  status.completionTime = c.now.toISOString();
  fail(c, "ContainerCheckpointFailed", "CheckpointFailed", message);
}

/** Every container checkpointed: a frozen pod of its own is stopped, a migration's stays frozen. */
async function succeed(c: PcContext): Promise<void> {
  const { deps, pc, status, children } = c;
  status.phase = "Succeeded";
  status.message = `${children.length} container(s) checkpointed`;
  const migration = pc.metadata?.ownerReferences?.some((o) =>
    o.controller && o.kind === "PodMigration"
  );
  if (status.freeze?.state === "Frozen" && !migration) {
    status.message += `; ${await stopPod(deps, pc, status, c.ref)}`;
  } else if (status.freeze?.state === "Frozen") {
    status.message += "; the pod stays frozen for its migration";
  }
  status.completionTime = c.now.toISOString();
  setCondition(c.conditions, {
    type: "Completed",
    status: "True",
    reason: "AllContainersCheckpointed",
    message: status.message,
  }, c.now);
  deps.events.normal(pc, "CheckpointSucceeded", status.message);
}

/** Still running: counts what is done and renews a freeze (a lost one fails the checkpoint). */
async function progress(c: PcContext): Promise<ReconcileResult> {
  const { deps, pc, status, children } = c;
  status.phase = "Running";
  const done = children.filter((x) => x.status?.phase === "Succeeded").length;
  status.message = `${done}/${children.length} container(s) checkpointed`;
  if (status.freeze?.state !== "Frozen") return;
  // Renew while working: a controller that stops renewing lets the agent thaw the pod.
  const windowS = pc.spec.freezeDeadlineSeconds ?? DEFAULT_FREEZE_DEADLINE_S;
  const wait = renewIn(status.freeze.deadline, windowS, c.now);
  if (wait > 0) return { requeueAfterMs: Math.min(wait, 5000) };
  const f = await controlFreeze(deps, status.nodeName!, c.ref, "EXTEND", windowS);
  if (f.state === "frozen") {
    status.freeze.deadline = isoOf(f.deadlineMs);
    return { requeueAfterMs: 5000 };
  }
  status.freeze.state = "Thawed";
  status.completionTime = c.now.toISOString();
  fail(
    c,
    "Thawed",
    "CheckpointFailed",
    `Pod "${c.namespace}/${pc.spec.podName}" is no longer frozen (${f.state}${
      f.message ? `: ${f.message}` : ""
    }): its checkpoint is not its final state`,
  );
}

/**
 * Milliseconds until a freeze ending at `deadline` needs renewing: when less
 * than half of its `windowS` is left (0: now; also without a deadline).
 * Renewing at every reconcile rewrote the deadline in the status each time,
 * and that patch woke this PodCheckpoint again: a loop of ~2 patches a
 * second for as long as a checkpoint ran. Only the deadline thaws a frozen
 * pod (the agent keeps freezes across its restarts), so a renewal at half
 * the window misses nothing a renewal every second would have seen.
 */
export function renewIn(deadline: string | undefined, windowS: number, now: Date): number {
  const left = Date.parse(deadline ?? "") - now.getTime();
  return Number.isNaN(left) ? 0 : Math.max(0, left - (windowS * 1000) / 2);
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
