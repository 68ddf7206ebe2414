/**
 * The Restoring phase: create the restored pod on the target node from the
 * checkpoint images, wait until it runs, then hand over from the source.
 *
 * Hand-over for a pod owned by a ReplicaSet (a Deployment's): the restored
 * pod is created without the selector's labels, so the ReplicaSet ignores
 * it while it starts. Once it runs, the source gets the lowest
 * pod-deletion-cost and the restored pod gets the labels; the ReplicaSet
 * adopts it, and only after that adoption is the source deleted, so the
 * ReplicaSet never sees a missing replica and never starts a cold one.
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import type { CarriedVolumes, PodCheckpoint, PodMigration } from "../api/mod.ts";
import { apiStatus } from "../kube/lpm_client.ts";
import type { ReconcilerDeps } from "./deps.ts";
import type { ReconcileResult } from "./runtime/controller.ts";
import type { Logger } from "../base/log.ts";
import { phaseTime, setPhase } from "./_status.ts";
import {
  buildRestoredPod,
  controllerOf,
  DELETION_COST_ANNOTATION,
  restoredPodName,
} from "./restored_pod.ts";
import {
  cond,
  getCondition,
  MigrationFailure,
  type MigrationStatus,
  PM_CONDITIONS,
  targetNodeOf,
} from "./pod_migration_status.ts";
import {
  notFrozenReason,
  renewSourceFreeze,
  type SourceFreeze,
  sourceFreeze,
  sourceFreezeAction,
} from "./pod_migration_freeze.ts";
import { askAgentWithin } from "../contract/agent.ts";

const BAD_WAITING = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "CrashLoopBackOff",
  "CreateContainerError",
  "CreateContainerConfigError",
  "RunContainerError",
]);

/** Why a restored pod will not come up, or undefined while it still may. */
export function restoreFailure(pod: k8s.V1Pod): string | undefined {
  if (pod.status?.phase === "Failed") {
    return `pod phase Failed: ${pod.status.message ?? pod.status.reason ?? ""}`;
  }
  for (const cs of pod.status?.initContainerStatuses ?? []) {
    const w = cs.state?.waiting;
    if (w?.reason && BAD_WAITING.has(w.reason)) {
      return `init container "${cs.name}" ${w.reason}: ${w.message ?? ""}`;
    }
    const t = cs.state?.terminated;
    if (t && t.exitCode !== 0) {
      return `init container "${cs.name}" failed (${t.reason ?? "exit " + t.exitCode}): ${
        t.message ?? ""
      }`;
    }
  }
  for (const cs of pod.status?.containerStatuses ?? []) {
    const w = cs.state?.waiting;
    if (w?.reason && BAD_WAITING.has(w.reason)) {
      return `container "${cs.name}" ${w.reason}: ${w.message ?? ""}`;
    }
    const t = cs.state?.terminated;
    if (t) {
      return `container "${cs.name}" terminated (${t.reason ?? "exit " + t.exitCode}): ${
        t.message ?? ""
      }`;
    }
  }
  return undefined;
}

/** True when the pod runs with every container started (and ready, if it has probes). */
export function podRunning(pod: k8s.V1Pod): boolean {
  if (pod.status?.phase !== "Running") return false;
  const statuses = pod.status.containerStatuses ?? [];
  if (statuses.length !== (pod.spec?.containers.length ?? 0)) return false;
  return statuses.every((cs) => cs.state?.running && cs.ready !== false);
}

async function readPod(
  deps: ReconcilerDeps,
  ns: string,
  name: string,
): Promise<k8s.V1Pod | undefined> {
  return await deps.cache.pod(ns, name);
}

/** What the steps of one Restoring reconcile share. */
interface RestoreContext {
  deps: ReconcilerDeps;
  pm: PodMigration;
  status: MigrationStatus;
  log: Logger;
  now: Date;
  ns: string;
  /** The source pod's name. */
  srcName: string;
  /** The restored pod's name. */
  name: string;
  source?: k8s.V1Pod;
  restored?: k8s.V1Pod;
  /** The source's controller (a ReplicaSet hands over by adoption). */
  owner?: k8s.V1OwnerReference;
}

/** Goes on to the next step; anything else ends this reconcile with that result. */
const NEXT = "next";
type RestoreStep = (c: RestoreContext) => Promise<typeof NEXT | ReconcileResult>;

/** The Restoring phase, in order: the restored pod, its start, the source's hand-over. */
const RESTORE_STEPS: RestoreStep[] = [
  createRestoredPod,
  waitRestoredRunning,
  adoptIntoReplicaSet,
  handOver,
  succeed,
];

/** One step of the Restoring phase. */
export async function stepRestoring(
  deps: ReconcilerDeps,
  pm: PodMigration,
  status: MigrationStatus,
  log: Logger,
): Promise<ReconcileResult> {
  const now = deps.now();
  const ns = pm.metadata!.namespace!;
  const srcName = pm.spec.podName;
  const name = status.restoredPodName ??= restoredPodName(srcName, pm.metadata!.uid!);
  const source = await readPod(deps, ns, srcName);
  // A miss is not confirmed with a GET until the pod ran: creating it is the
  // confirmation (AlreadyExists: read it), one request fewer per migration.
  const restored = await deps.cache.pod(ns, name, { confirmMiss: restoredRan(status) });
  const owner = source ? controllerOf(source) : undefined;
  const c: RestoreContext = {
    deps,
    pm,
    status,
    log,
    now,
    ns,
    srcName,
    name,
    source,
    restored,
    owner,
  };
  for (const s of RESTORE_STEPS) {
    const r = await s(c);
    if (r !== NEXT) return r;
  }
}

/** True once the restored pod ran (from then on the source is handed over, never thawed). */
function restoredRan(status: MigrationStatus): boolean {
  return getCondition(status, PM_CONDITIONS.restored)?.status === "True";
}

/** Creates the restored pod on the target node from the checkpoint images (once). */
async function createRestoredPod(c: RestoreContext): Promise<typeof NEXT | ReconcileResult> {
  const { deps, pm, status, ns, name, source, owner } = c;
  if (c.restored) return NEXT;
  if (restoredRan(status)) {
    throw new MigrationFailure(
      "RestoredPodGone",
      `The restored pod "${ns}/${name}" disappeared during hand-over`,
    );
  }
  if (!source) {
    throw new MigrationFailure(
      "SourcePodGone",
      `Source pod "${ns}/${c.srcName}" disappeared before the restore`,
    );
  }
  const pc = await deps.cache.get<PodCheckpoint>("podcheckpoints", ns, pm.metadata!.name!);
  const images: Record<string, string> = {};
  const volumes: Record<string, CarriedVolumes> = {};
  for (const x of pc?.status?.containers ?? []) {
    if (x.image) images[x.name] = x.image;
    if (x.volumes) volumes[x.name] = x.volumes;
  }
  const withheld = owner?.kind === "ReplicaSet"
    ? Object.keys((await selectorOf(deps, ns, owner.name)) ?? source.metadata?.labels ?? {})
    : [];
  const targetNode = await deps.cache.node(targetNodeOf(pm, status));
  if (!targetNode) throw new Error(`Target node "${targetNodeOf(pm, status)}" does not exist`);
  const body = buildRestoredPod(source, {
    name,
    targetNode: targetNodeOf(pm, status),
    targetNodeLabels: targetNode.metadata?.labels,
    images,
    volumes,
    migrationName: pm.metadata!.name!,
    withheldLabels: withheld,
  });
  try {
    await deps.core.createNamespacedPod({ namespace: ns, body });
  } catch (err) {
    if (apiStatus(err) !== 409) throw err;
    // Made by an earlier reconcile the cache has not seen yet.
    c.restored = await deps.core.readNamespacedPod({ name, namespace: ns });
    return NEXT;
  }
  deps.events.normal(
    pm,
    "RestoredPodCreated",
    `Created pod "${name}" on node "${targetNodeOf(pm, status)}"`,
  );
  c.log.info("restored pod created", { pod: name, node: targetNodeOf(pm, status) });
  return { requeueAfterMs: 1000 };
}

/**
 * Until the restored pod runs: renews the source's freeze, fails on a pod that
 * will not come up, and records when it started (restore time, downtime).
 */
async function waitRestoredRunning(c: RestoreContext): Promise<typeof NEXT | ReconcileResult> {
  const { deps, pm, status, now, ns, name } = c;
  const restored = c.restored!;
  if (restoredRan(status)) return NEXT;
  await renewSourceFreeze(deps, pm, status);
  const failure = restoreFailure(restored);
  if (failure) {
    throw new MigrationFailure(
      "RestoreFailed",
      `Restored pod "${ns}/${name}" did not start: ${failure}`,
    );
  }
  let seenOnNode: Date | undefined;
  if (!podRunning(restored)) {
    seenOnNode = await runningOnTarget(c);
    if (!seenOnNode) return { requeueAfterMs: 500 };
    c.log.warn("the restored pod runs on its node but its status says otherwise", {
      pod: `${ns}/${name}`,
      phase: restored.status?.phase,
    });
  }
  const restoreStart = phaseTime(status, "Restoring") ?? now;
  // When the runtime started the last restored container, not when this
  // controller happened to look: the target node's record (ms), else the
  // pod status (whole seconds).
  const started = seenOnNode ?? await preciseStart(deps, targetNodeOf(pm, status), restored) ??
    lastStarted(restored) ?? now;
  status.restoredRunningAt = started.toISOString();
  const frozenAt = status.frozenAt ? new Date(status.frozenAt) : undefined;
  status.timings = {
    ...status.timings,
    restoreMs: Math.max(0, started.getTime() - restoreStart.getTime()),
    // Downtime: from the freeze of the source to its successor running.
    ...(frozenAt ? { downtimeMs: Math.max(0, started.getTime() - frozenAt.getTime()) } : {}),
  };
  cond(status, pm, now, {
    type: PM_CONDITIONS.restored,
    status: "True",
    reason: "RestoredPodRunning",
    message: `Pod "${name}" runs on node "${targetNodeOf(pm, status)}" from the checkpoint` +
      (seenOnNode ? " (seen on the node's runtime: its status was not updated)" : ""),
  });
  deps.events.normal(
    pm,
    "RestoredPodRunning",
    `Pod "${name}" is running on "${targetNodeOf(pm, status)}"`,
  );
  return NEXT;
}

/**
 * A ReplicaSet's source: the source gets the lowest deletion cost and the
 * restored pod the labels; wait until the ReplicaSet adopts it.
 */
async function adoptIntoReplicaSet(c: RestoreContext): Promise<typeof NEXT | ReconcileResult> {
  const { deps, ns, srcName, name, source, owner } = c;
  if (!source || owner?.kind !== "ReplicaSet") return NEXT;
  if (controllerOf(c.restored!)?.uid === owner.uid) return NEXT;
  await deps.core.patchNamespacedPod(
    {
      name: srcName,
      namespace: ns,
      body: { metadata: { annotations: { [DELETION_COST_ANNOTATION]: "-2147483648" } } },
    },
  );
  c.restored = await deps.core.patchNamespacedPod(
    { name, namespace: ns, body: { metadata: { labels: source.metadata?.labels ?? {} } } },
  );
  return { requeueAfterMs: 500 }; // wait for the ReplicaSet to adopt it
}

/**
 * The source's hand-over, exactly once: a frozen source is confirmed (the
 * agent stops its deadline only if it is still frozen), deleted without
 * grace, then killed; with sourcePodPolicy Keep it is thawed and kept.
 */
async function handOver(c: RestoreContext): Promise<typeof NEXT> {
  const { deps, pm, status } = c;
  const policy = pm.spec.sourcePodPolicy ?? "Delete";
  const replaced = policy === "Delete" || c.owner?.kind === "ReplicaSet";
  const freeze = getCondition(status, PM_CONDITIONS.sourceFrozen)?.status === "True"
    ? await sourceFreeze(deps, pm, status)
    : undefined;
  if (freeze && replaced) await confirmHandOver(c, freeze);
  if (c.source && replaced) await deleteSource(c, freeze);
  if (freeze && replaced) await endSourceFreeze(c, freeze, "KILL");
  else if (policy === "Keep" && freeze) await endSourceFreeze(c, freeze, "THAW");
  if (policy === "Keep" && !(c.source && c.owner?.kind === "ReplicaSet")) {
    cond(status, pm, c.now, {
      type: PM_CONDITIONS.sourceDeleted,
      status: "False",
      reason: "SourceKept",
      message: `Source pod "${c.srcName}" kept (sourcePodPolicy Keep)`,
    });
  }
  return NEXT;
}

/** CONFIRM: a source that ran again fails the migration (its restored pod is removed). */
async function confirmHandOver(c: RestoreContext, freeze: SourceFreeze): Promise<void> {
  const r = await sourceFreezeAction(c.deps, freeze, "CONFIRM");
  if (r.state !== "confirmed" && r.state !== "killed") {
    throw new MigrationFailure(
      "SourceThawed",
      `The source ran again before hand-over (${notFrozenReason(r)}); the restored pod is removed`,
    );
  }
}

/** Deletes the source (no grace when frozen: it has nothing to finish, and its successor runs). */
async function deleteSource(c: RestoreContext, freeze: SourceFreeze | undefined): Promise<void> {
  try {
    await c.deps.core.deleteNamespacedPod({
      name: c.srcName,
      namespace: c.ns,
      ...(freeze ? { gracePeriodSeconds: 0 } : {}),
    });
  } catch (err) {
    if (apiStatus(err) !== 404) throw err;
  }
  cond(c.status, c.pm, c.now, {
    type: PM_CONDITIONS.sourceDeleted,
    status: "True",
    reason: "SourceDeleted",
    message: `Source pod "${c.srcName}" deleted from node "${c.status.sourceNode}"`,
  });
}

/** How the source's freeze ends at hand-over: killed after its deletion, or thawed and kept. */
const SOURCE_FREEZE_ENDS = {
  // Deleted first (so the kubelet does not restart them), then killed without running.
  KILL: {
    reason: "Killed",
    message: (pod: string) =>
      `Source pod "${pod}" killed while frozen: it never ran past its checkpoint`,
    event: "SourceKilled",
    note: (pod: string) => `Killed the frozen source pod "${pod}"`,
  },
  // Keep: the source goes on next to its copy (a clone, asked for).
  THAW: {
    reason: "Thawed",
    message: (pod: string) =>
      `Source pod "${pod}" thawed: sourcePodPolicy Keep runs it next to its copy`,
    event: "SourceThawed",
    note: (pod: string) => `Thawed source pod "${pod}" (sourcePodPolicy Keep)`,
  },
};

/** Ends the source's freeze with KILL or THAW and records it. */
async function endSourceFreeze(
  c: RestoreContext,
  freeze: SourceFreeze,
  action: keyof typeof SOURCE_FREEZE_ENDS,
): Promise<void> {
  const end = SOURCE_FREEZE_ENDS[action];
  await sourceFreezeAction(c.deps, freeze, action);
  cond(c.status, c.pm, c.now, {
    type: PM_CONDITIONS.sourceFrozen,
    status: "False",
    reason: end.reason,
    message: end.message(c.srcName),
  });
  c.deps.events.normal(c.pm, end.event, end.note(c.srcName));
}

/** Records the migration Succeeded, with its total time and downtime. */
function succeed(c: RestoreContext): Promise<ReconcileResult> {
  const { deps, pm, status, now } = c;
  const start = new Date(status.startTime ?? now);
  status.timings = { ...status.timings, totalMs: now.getTime() - start.getTime() };
  status.completionTime = now.toISOString();
  status.message = `Pod "${c.srcName}" moved from "${status.sourceNode}" to "${
    targetNodeOf(pm, status)
  }" as "${c.name}"`;
  cond(status, pm, now, {
    type: PM_CONDITIONS.succeeded,
    status: "True",
    reason: "Migrated",
    message: status.message,
  });
  setPhase(status, "Succeeded", now);
  deps.metrics?.migrationDuration.observe(
    { result: "succeeded" },
    (status.timings.totalMs ?? 0) / 1000,
  );
  deps.metrics?.migrationDowntime.observe({}, (status.timings.downtimeMs ?? 0) / 1000);
  return Promise.resolve();
}

/**
 * After this long in Restoring with no Running status, the target's runtime is asked
 * directly, and its containers count once they have run this long.
 */
const STATUS_LAG_MS = 10_000;

/**
 * When every container of the restored pod runs on the target node's
 * runtime while the pod's status still says otherwise, the start of the last
 * one; else undefined. A kubelet that cannot write the status must not keep
 * the source frozen: seen after an API server restart, when the node
 * authorizer did not know the new pod yet ("no relationship found between
 * node and this object") and the kubelet did not retry for minutes. Only for
 * pods without readiness probes: readiness is the kubelet's to judge.
 */
async function runningOnTarget(c: RestoreContext): Promise<Date | undefined> {
  const { deps, pm, status, now } = c;
  const restored = c.restored!;
  const since = phaseTime(status, "Restoring");
  if (!since || now.getTime() - since.getTime() < STATUS_LAG_MS) return undefined;
  if (restored.spec?.containers.some((x) => x.readinessProbe)) return undefined;
  const started = await preciseStart(deps, targetNodeOf(pm, status), restored);
  // A container that has just started may still be the kubelet's to judge (after a
  // containerd restart it reports the pod within a second or two): only one that has
  // run for STATUS_LAG_MS without its status arriving counts.
  if (!started || now.getTime() - started.getTime() < STATUS_LAG_MS) return undefined;
  return started;
}

/** The target runtime's start time of the pod's last container, or undefined (best effort, 3 s). */
async function preciseStart(
  deps: ReconcilerDeps,
  node: string,
  pod: k8s.V1Pod,
): Promise<Date | undefined> {
  const starts = await askAgentWithin(
    deps.agents,
    node,
    (a) => a.containerStarts?.(pod.metadata!.namespace!, pod.metadata!.name!),
    { timeoutMs: 3000 },
  );
  const want = pod.spec?.containers.map((c) => c.name) ?? [];
  if (!starts || !want.every((n) => starts.some((s) => s.name === n))) return undefined;
  const last = Math.max(...starts.filter((s) => want.includes(s.name)).map((s) => s.startedAtMs));
  return Number.isFinite(last) ? new Date(last) : undefined;
}

/** When the last container of `pod` started running (from its status), if all run. */
export function lastStarted(pod: k8s.V1Pod): Date | undefined {
  let last: Date | undefined;
  for (const cs of pod.status?.containerStatuses ?? []) {
    const at = cs.state?.running?.startedAt;
    if (!at) return undefined;
    const d = new Date(at);
    if (!last || d > last) last = d;
  }
  return last;
}

async function selectorOf(
  deps: ReconcilerDeps,
  ns: string,
  rsName: string,
): Promise<Record<string, string> | undefined> {
  try {
    const rs = await deps.core.readNamespacedReplicaSet({ name: rsName, namespace: ns });
    return rs.spec?.selector?.matchLabels;
  } catch (err) {
    if (apiStatus(err) === 404) return undefined;
    throw err;
  }
}
