/** Status bookkeeping shared by the reconcilers: phases with timestamps, conditions. @module */

/** A metav1.Condition. */
export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

/**
 * Sets a condition in place: the transition time changes only when the
 * status does, as metav1.Condition requires.
 */
export function setCondition(
  conditions: Condition[],
  c: Omit<Condition, "lastTransitionTime">,
  now: Date,
): Condition[] {
  const i = conditions.findIndex((x) => x.type === c.type);
  const prev = i >= 0 ? conditions[i] : undefined;
  const next: Condition = {
    ...c,
    message: c.message.slice(0, 32768),
    lastTransitionTime: prev && prev.status === c.status
      ? prev.lastTransitionTime
      : now.toISOString(),
  };
  if (i >= 0) conditions[i] = next;
  else conditions.push(next);
  return conditions;
}

/** Finds a condition by type. */
export function getCondition(
  conditions: Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** A status with a phase and phase transition timestamps. */
export interface PhasedStatus {
  phase?: string;
  phaseTransitionTimestamps?: { phase: string; phaseTransitionTimestamp: string }[];
}

/** Moves `status` to `phase` and records when; returns false if it was already there. */
export function setPhase(status: PhasedStatus, phase: string, now: Date): boolean {
  if (status.phase === phase) return false;
  status.phase = phase;
  status.phaseTransitionTimestamps = [
    ...(status.phaseTransitionTimestamps ?? []),
    { phase, phaseTransitionTimestamp: now.toISOString() },
  ];
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
