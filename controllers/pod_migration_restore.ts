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
import * as k8s from "@kubernetes/client-node";
import type { CarriedVolumes, PodCheckpoint, PodMigration } from "../api/mod.ts";
import { apiStatus } from "../kube/lpm_client.ts";
import type { ReconcilerDeps } from "./deps.ts";
import type { ReconcileResult } from "./runtime/controller.ts";
import type { Logger } from "../base/log.ts";
import { type Condition, phaseTime, setPhase } from "./_status.ts";
import {
  buildRestoredPod,
  controllerOf,
  DELETION_COST_ANNOTATION,
  restoredPodName,
} from "./restored_pod.ts";
import {
  cond,
  MigrationFailure,
  type MigrationStatus,
  PM_CONDITIONS,
} from "./pod_migration_status.ts";
import {
  notFrozenReason,
  renewSourceFreeze,
  sourceFreeze,
  sourceFreezeAction,
} from "./pod_migration_freeze.ts";
import { askAgentWithin } from "../contract/agent.ts";
import { makeApiClient } from "../kube/api_requests.ts";

const BAD_WAITING = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "CrashLoopBackOff",
  "CreateContainerError",
  "CreateContainerConfigError",
  "RunContainerError",
]);

const mergePatch = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);

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
  let restored = await readPod(deps, ns, name);
  const owner = source ? controllerOf(source) : undefined;

  if (!restored) {
    if (getCond(status, PM_CONDITIONS.restored)?.status === "True") {
      throw new MigrationFailure(
        "RestoredPodGone",
        `The restored pod "${ns}/${name}" disappeared during hand-over`,
      );
    }
    if (!source) {
      throw new MigrationFailure(
        "SourcePodGone",
        `Source pod "${ns}/${srcName}" disappeared before the restore`,
      );
    }
    const pc = await deps.cache.get<PodCheckpoint>("podcheckpoints", ns, pm.metadata!.name!);
    const images: Record<string, string> = {};
    const volumes: Record<string, CarriedVolumes> = {};
    for (const c of pc?.status?.containers ?? []) {
      if (c.image) images[c.name] = c.image;
      if (c.volumes) volumes[c.name] = c.volumes;
    }
    const withheld = owner?.kind === "ReplicaSet"
      ? Object.keys((await selectorOf(deps, ns, owner.name)) ?? source.metadata?.labels ?? {})
      : [];
    const targetNode = await deps.cache.node(pm.spec.targetNode);
    if (!targetNode) throw new Error(`Target node "${pm.spec.targetNode}" does not exist`);
    const body = buildRestoredPod(source, {
      name,
      targetNode: pm.spec.targetNode,
      targetNodeLabels: targetNode.metadata?.labels,
      images,
      volumes,
      migrationName: pm.metadata!.name!,
      withheldLabels: withheld,
    });
    await deps.core.createNamespacedPod({ namespace: ns, body });
    deps.events.normal(
      pm,
      "RestoredPodCreated",
      `Created pod "${name}" on node "${pm.spec.targetNode}"`,
    );
    log.info("restored pod created", { pod: name, node: pm.spec.targetNode });
    return { requeueAfterMs: 1000 };
  }

  if (getCond(status, PM_CONDITIONS.restored)?.status !== "True") {
    await renewSourceFreeze(deps, pm, status);
  }
  const failure = restoreFailure(restored);
  if (failure && getCond(status, PM_CONDITIONS.restored)?.status !== "True") {
    throw new MigrationFailure(
      "RestoreFailed",
      `Restored pod "${ns}/${name}" did not start: ${failure}`,
    );
  }
  if (getCond(status, PM_CONDITIONS.restored)?.status !== "True") {
    if (!podRunning(restored)) return { requeueAfterMs: 500 };
    const restoreStart = phaseTime(status, "Restoring") ?? now;
    // When the runtime started the last restored container, not when this
    // controller happened to look: the target node's record (ms), else the
    // pod status (whole seconds).
    const started = await preciseStart(deps, pm.spec.targetNode, restored) ??
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
      message: `Pod "${name}" runs on node "${pm.spec.targetNode}" from the checkpoint`,
    });
    deps.events.normal(
      pm,
      "RestoredPodRunning",
      `Pod "${name}" is running on "${pm.spec.targetNode}"`,
    );
  }

  // Hand-over.
  if (source && owner?.kind === "ReplicaSet") {
    const adopted = controllerOf(restored)?.uid === owner.uid;
    if (!adopted) {
      await deps.core.patchNamespacedPod(
        {
          name: srcName,
          namespace: ns,
          body: { metadata: { annotations: { [DELETION_COST_ANNOTATION]: "-2147483648" } } },
        },
        mergePatch,
      );
      restored = await deps.core.patchNamespacedPod(
        { name, namespace: ns, body: { metadata: { labels: source.metadata?.labels ?? {} } } },
        mergePatch,
      );
      return { requeueAfterMs: 500 }; // wait for the ReplicaSet to adopt it
    }
  }
  const policy = pm.spec.sourcePodPolicy ?? "Delete";
  const freeze = getCond(status, PM_CONDITIONS.sourceFrozen)?.status === "True"
    ? await sourceFreeze(deps, pm, status)
    : undefined;
  if (freeze && (policy === "Delete" || owner?.kind === "ReplicaSet")) {
    // Hand-over: the agent stops the deadline only if the source is still frozen.
    const c = await sourceFreezeAction(deps, freeze, "CONFIRM");
    if (c.state !== "confirmed" && c.state !== "killed") {
      throw new MigrationFailure(
        "SourceThawed",
        `The source ran again before hand-over (${
          notFrozenReason(c)
        }); the restored pod is removed`,
      );
    }
  }
  if (source && (policy === "Delete" || owner?.kind === "ReplicaSet")) {
    try {
      // No grace: a frozen source has nothing to finish, and its successor runs.
      await deps.core.deleteNamespacedPod({
        name: srcName,
        namespace: ns,
        ...(freeze ? { gracePeriodSeconds: 0 } : {}),
      });
    } catch (err) {
      if (apiStatus(err) !== 404) throw err;
    }
    cond(status, pm, now, {
      type: PM_CONDITIONS.sourceDeleted,
      status: "True",
      reason: "SourceDeleted",
      message: `Source pod "${srcName}" deleted from node "${status.sourceNode}"`,
    });
  }
  if (freeze && (policy === "Delete" || owner?.kind === "ReplicaSet")) {
    // Deleted first (so the kubelet does not restart them), then killed without running.
    await sourceFreezeAction(deps, freeze, "KILL");
    cond(status, pm, now, {
      type: PM_CONDITIONS.sourceFrozen,
      status: "False",
      reason: "Killed",
      message: `Source pod "${srcName}" killed while frozen: it never ran past its checkpoint`,
    });
    deps.events.normal(pm, "SourceKilled", `Killed the frozen source pod "${srcName}"`);
  } else if (policy === "Keep" && freeze) {
    // Keep: the source goes on next to its copy (a clone, asked for).
    await sourceFreezeAction(deps, freeze, "THAW");
    cond(status, pm, now, {
      type: PM_CONDITIONS.sourceFrozen,
      status: "False",
      reason: "Thawed",
      message: `Source pod "${srcName}" thawed: sourcePodPolicy Keep runs it next to its copy`,
    });
    deps.events.normal(pm, "SourceThawed", `Thawed source pod "${srcName}" (sourcePodPolicy Keep)`);
  }
  if (policy === "Keep" && !(source && owner?.kind === "ReplicaSet")) {
    cond(status, pm, now, {
      type: PM_CONDITIONS.sourceDeleted,
      status: "False",
      reason: "SourceKept",
      message: `Source pod "${srcName}" kept (sourcePodPolicy Keep)`,
    });
  }
  const start = new Date(status.startTime ?? now);
  status.timings = { ...status.timings, totalMs: now.getTime() - start.getTime() };
  status.completionTime = now.toISOString();
  status.message =
    `Pod "${srcName}" moved from "${status.sourceNode}" to "${pm.spec.targetNode}" as "${name}"`;
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

function getCond(status: MigrationStatus, type: string): Condition | undefined {
  return (status.conditions as Condition[] | undefined)?.find((c) => c.type === type);
}

async function selectorOf(
  deps: ReconcilerDeps,
  ns: string,
  rsName: string,
): Promise<Record<string, string> | undefined> {
  try {
    const apps = makeApiClient(deps.kc, k8s.AppsV1Api);
    const rs = await apps.readNamespacedReplicaSet({ name: rsName, namespace: ns });
    return rs.spec?.selector?.matchLabels;
  } catch (err) {
    if (apiStatus(err) === 404) return undefined;
    throw err;
  }
}
