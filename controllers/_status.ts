/**
 * Status bookkeeping of the reconcilers, which edit a status in place:
 * in-place forms of `api/conditions.ts` (the one implementation of the
 * metav1.Condition rules), plus phases with timestamps.
 * @module
 */
import {
  appendPhaseTransition,
  findCondition,
  setCondition as withCondition,
} from "../api/conditions.ts";
import type { Condition, PhaseTransition } from "../api/types.ts";

export type { Condition };

/**
 * Sets a condition in place (see `api/conditions.ts`: the transition time
 * changes only when the status does) and returns the same array.
 */
export function setCondition(
  conditions: Condition[],
  c: Omit<Condition, "lastTransitionTime">,
  now: Date,
): Condition[] {
  const next = withCondition(conditions, c, now);
  conditions.splice(0, conditions.length, ...next);
  return conditions;
}

/** Finds a condition by type. */
export const getCondition = findCondition;

/** A status with a phase and phase transition timestamps. */
export interface PhasedStatus {
  phase?: string;
  phaseTransitionTimestamps?: PhaseTransition[];
}

/** Moves `status` to `phase` and records when; returns false if it was already there. */
export function setPhase(status: PhasedStatus, phase: string, now: Date): boolean {
  if (status.phase === phase) return false;
  status.phase = phase;
  status.phaseTransitionTimestamps = appendPhaseTransition(
    status.phaseTransitionTimestamps,
    phase,
    now,
  );
  return true;
}

/** When `status` entered `phase`, if it did. */
export function phaseTime(status: PhasedStatus, phase: string): Date | undefined {
  const t = status.phaseTransitionTimestamps?.findLast((p) => p.phase === phase)
    ?.phaseTransitionTimestamp;
  return t ? new Date(t) : undefined;
}

/** True for phases that never change again. */
export function isTerminal(phase: string | undefined): boolean {
  return phase === "Succeeded" || phase === "Failed";
}
