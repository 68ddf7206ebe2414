/**
 * How often the controller asks an agent about an operation while a pod is
 * frozen for it. Every wait between "the agent finished" and "the controller
 * noticed" is downtime while the source is frozen, and it averages half the
 * poll interval: with the default 1 s interval, two such waits (the frozen
 * dump's operation, then the target's pre-pull) cost about a second of
 * downtime per migration. While frozen, the interval drops to
 * {@linkcode FROZEN_POLL_MS} (one small gRPC call per frozen container);
 * operations of running pods keep the configured interval.
 * @module
 */

/** Poll interval while the source is frozen, ms. */
export const FROZEN_POLL_MS = 100;

/** The poll interval for an operation: `pollMs`, at most {@linkcode FROZEN_POLL_MS} when `frozen`. */
export function operationPollMs(pollMs: number, frozen: boolean): number {
  return frozen ? Math.min(pollMs, FROZEN_POLL_MS) : pollMs;
}
