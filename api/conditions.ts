/**
 * Condition types the lpm kinds use, and helpers that keep metav1.Condition
 * semantics (the transition time moves only when the status changes).
 * @module
 */
import type { Condition, PhaseTransition } from "./types.ts";

/** Condition types, by the kind that sets them. */
export const CONDITION_TYPES = {
  /** Any kind: the object reached its goal (summary condition). */
  Ready: "Ready",
  /** CheckpointStorageClass: backend and registry answered the last validation. */
  Available: "Available",
  /** CheckpointStorageClass: more than one class is marked default. */
  DefaultConflict: "DefaultConflict",
  /** PodMigration: pod, target node and storage class checked. */
  Validated: "Validated",
  /** PodMigration, PodCheckpoint: every container checkpointed. */
  Checkpointed: "Checkpointed",
  /** ContainerCheckpoint: the runtime wrote the CRIU archive. */
  CheckpointCreated: "CheckpointCreated",
  /** ContainerCheckpoint: the checkpoint image is in the registry. */
  ImagePushed: "ImagePushed",
  /** ContainerCheckpoint: the archive is in the storage backend. */
  Stored: "Stored",
  /** PodMigration: checkpoint images available to the target node. */
  Transferred: "Transferred",
  /** PodMigration, PodRestore: the restored pod runs. */
  Restored: "Restored",
  /** PodMigration: the source pod was deleted per sourcePodPolicy. */
  SourceDeleted: "SourceDeleted",
  /** PodMigration: the migration succeeded. */
  Succeeded: "Succeeded",
  /** Checkpoints: finished, successfully or not (see reason). */
  Completed: "Completed",
  /** ContainerCheckpoint: the node agent answered. */
  AgentReachable: "AgentReachable",
} as const;

/** A condition type name from {@linkcode CONDITION_TYPES}. */
export type ConditionType = typeof CONDITION_TYPES[keyof typeof CONDITION_TYPES];

/** The longest message the schema accepts. */
export const MAX_CONDITION_MESSAGE = 32768;

/**
 * Returns `conditions` with `cond` set (replacing the one of the same type).
 * `lastTransitionTime` stays when the status did not change and becomes
 * `now` when it did; messages are cut to the schema's limit. Does not modify
 * the input array.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  cond: Omit<Condition, "lastTransitionTime"> & { lastTransitionTime?: string },
  now: Date,
): Condition[] {
  const list = [...(conditions ?? [])];
  const i = list.findIndex((c) => c.type === cond.type);
  const prev = i >= 0 ? list[i] : undefined;
  const next: Condition = {
    ...cond,
    message: cond.message.slice(0, MAX_CONDITION_MESSAGE),
    lastTransitionTime: prev && prev.status === cond.status
      ? prev.lastTransitionTime
      : cond.lastTransitionTime ?? now.toISOString(),
  };
  if (i >= 0) list[i] = next;
  else list.push(next);
  return list;
}

/** The condition of `type`, if set. */
export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** True when the condition of `type` has status "True". */
export function isConditionTrue(
  conditions: readonly Condition[] | undefined,
  type: string,
): boolean {
  return findCondition(conditions, type)?.status === "True";
}

/**
 * Returns the phase history with `phase` appended, unless it already is the
 * last phase entered (then the history is returned unchanged).
 */
export function appendPhaseTransition(
  history: readonly PhaseTransition[] | undefined,
  phase: string,
  now: Date,
): PhaseTransition[] {
  const list = [...(history ?? [])];
  if (list.at(-1)?.phase === phase) return list;
  list.push({ phase, phaseTransitionTimestamp: now.toISOString() });
  return list;
}
