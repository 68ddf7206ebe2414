/**
 * Eviction becomes migration: what the `pods/eviction` admission webhook
 * answers (KubeVirt's `evictionStrategy: LiveMigrate`). A pod annotated
 * `lpm.my.domain/eviction-strategy: LiveMigrate` is not evicted while lpm
 * can move it: the first eviction creates a PodMigration naming no target
 * (the controller chooses, target_node.ts) and every eviction until it ends
 * is refused with 429, which `kubectl drain` retries as it would for a
 * PodDisruptionBudget. Once the migration succeeded the source may go; a pod
 * lpm cannot move (no node fits, unsupported, its migration failed) is
 * evicted as usual, with the reason as an Event on the pod.
 *
 * The webhook gets the Eviction (the pod's name), not the pod: the pod,
 * nodes and migrations come from the controller's caches (cache.ts).
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import {
  API_VERSION,
  EVICTION_STORAGE_CLASS_ANNOTATION,
  EVICTION_STRATEGY_ANNOTATION,
  LIVE_MIGRATE,
  type PodMigration,
} from "../api/mod.ts";
import { createOrGet } from "../kube/lpm_client.ts";
import type { Logger } from "../base/log.ts";
import type { ReconcilerDeps } from "./deps.ts";
import { unsupportedReason } from "./restored_pod.ts";
import { chooseTargetNode } from "./target_node.ts";

/** Label on a PodMigration the webhook created: the evicted pod's name. */
export const EVICTED_POD_LABEL = "lpm.my.domain/evicted-pod";

/** What the webhook does with one eviction. */
export type EvictionDecision =
  | { action: "allow"; event?: string }
  | { action: "migrate"; migration: string }
  | { action: "wait"; migration: string };

/** The PodMigration an eviction of `pod` creates: one per pod (by UID), so retries find it. */
export function evictionMigrationName(pod: k8s.V1Pod): string {
  const uid = (pod.metadata?.uid ?? "").replaceAll("-", "").slice(0, 8);
  return `evict-${(pod.metadata?.name ?? "").slice(0, 44).replace(/[-.]+$/, "")}-${uid}`;
}

/** True when the pod asks to be migrated instead of evicted. */
export function optedIn(pod: k8s.V1Pod): boolean {
  return pod.metadata?.annotations?.[EVICTION_STRATEGY_ANNOTATION] === LIVE_MIGRATE;
}

const ENDED = new Set(["Succeeded", "Failed"]);

/**
 * The decision for an eviction of `pod` (pure). `migrations` are the
 * PodMigrations of the pod's namespace, `nodes` and `pods` the cluster's.
 */
export function decideEviction(
  pod: k8s.V1Pod,
  world: { migrations: PodMigration[]; nodes: k8s.V1Node[]; pods: k8s.V1Pod[] },
): EvictionDecision {
  if (!optedIn(pod)) return { action: "allow" };
  // Nothing runs to move: a pending or finished pod is evicted as usual.
  if (pod.status?.phase !== "Running" || pod.metadata?.deletionTimestamp) {
    return { action: "allow" };
  }
  const name = pod.metadata?.name;
  const inFlight = world.migrations.find((m) =>
    m.spec.podName === name && !ENDED.has(m.status?.phase ?? "") && !m.metadata?.deletionTimestamp
  );
  if (inFlight) return { action: "wait", migration: inFlight.metadata!.name! };
  const own = world.migrations.find((m) => m.metadata?.name === evictionMigrationName(pod));
  // Moved: what is left of the source may go.
  if (own?.status?.phase === "Succeeded") return { action: "allow" };
  if (own?.status?.phase === "Failed") {
    return {
      action: "allow",
      event:
        `Live migration failed (PodMigration "${own.metadata?.name}": ${own.status.message}); ` +
        "evicting the pod instead",
    };
  }
  const unsupported = unsupportedReason(pod);
  if (unsupported) {
    return {
      action: "allow",
      event: `Cannot live-migrate: ${unsupported}; evicting the pod instead`,
    };
  }
  const choice = chooseTargetNode(pod, world.nodes, world.pods);
  if (!choice.node) {
    return {
      action: "allow",
      event: `Cannot live-migrate: no node can take the pod (${
        choice.refusals.join("; ") || "the cluster has no nodes"
      }); evicting the pod instead`,
    };
  }
  return { action: "migrate", migration: evictionMigrationName(pod) };
}

/** The parts of an AdmissionReview request the webhook reads. */
interface AdmissionRequest {
  uid: string;
  name?: string;
  namespace?: string;
  subResource?: string;
  dryRun?: boolean;
}

/** An AdmissionReview response body. */
export function admissionResponse(
  uid: string,
  denial?: { code: number; message: string },
): unknown {
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    response: denial
      ? {
        uid,
        allowed: false,
        status: {
          code: denial.code,
          message: denial.message,
          reason: denial.code === 429 ? "TooManyRequests" : "Forbidden",
        },
      }
      : { uid, allowed: true },
  };
}

/** The PodMigration an eviction of `pod` creates. */
function evictionMigration(pod: k8s.V1Pod, name: string): PodMigration {
  const storageClass = pod.metadata?.annotations?.[EVICTION_STORAGE_CLASS_ANNOTATION];
  return {
    apiVersion: API_VERSION,
    kind: "PodMigration",
    metadata: {
      name,
      namespace: pod.metadata!.namespace!,
      labels: { [EVICTED_POD_LABEL]: pod.metadata!.name!.slice(0, 63) },
    },
    spec: {
      podName: pod.metadata!.name!,
      ...(storageClass ? { storageClassName: storageClass } : {}),
    },
  } as PodMigration;
}

/**
 * Answers one AdmissionReview of a `pods/eviction` CREATE. Errors become an
 * HTTP 500, which the webhook's `failurePolicy: Ignore` turns into an
 * admitted eviction: lpm failing never blocks a drain.
 */
export async function reviewEviction(
  deps: ReconcilerDeps,
  review: { request?: AdmissionRequest },
  log: Logger,
): Promise<unknown> {
  const req = review.request;
  if (!req?.uid) throw new Error("Cannot review: the AdmissionReview has no request.uid");
  if (req.subResource !== "eviction" || !req.name || !req.namespace) {
    return admissionResponse(req.uid);
  }
  const pod = await deps.cache.pod(req.namespace, req.name);
  if (!pod || !optedIn(pod)) return admissionResponse(req.uid);
  const key = `${req.namespace}/${req.name}`;
  const decision = decideEviction(pod, {
    migrations: await deps.cache.list<PodMigration>("podmigrations", req.namespace),
    nodes: await deps.cache.nodes(),
    pods: await deps.cache.pods(),
  });
  if (decision.action === "allow") {
    if (decision.event && !req.dryRun) {
      log.info("eviction allowed: cannot migrate", { pod: key, reason: decision.event });
      await deps.events.warning(
        { apiVersion: "v1", kind: "Pod", ...pod },
        "EvictionNotMigrated",
        decision.event,
      );
    }
    return admissionResponse(req.uid);
  }
  if (decision.action === "migrate" && !req.dryRun) {
    await createOrGet(
      deps.lpm,
      "podmigrations",
      req.namespace,
      evictionMigration(pod, decision.migration),
    );
    log.info("eviction refused: migrating instead", { pod: key, migration: decision.migration });
    await deps.events.normal(
      { apiVersion: "v1", kind: "Pod", ...pod },
      "EvictionMigrating",
      `Eviction refused: live-migrating the pod with PodMigration "${decision.migration}"`,
    );
  }
  return admissionResponse(req.uid, {
    code: 429,
    message: `lpm is migrating pod ${key} (PodMigration ${decision.migration}); retry`,
  });
}
