/**
 * `spec.ttlSecondsAfterFinished` of a PodMigration, as a Job's: that long
 * after the migration ended (`status.completionTime`, Succeeded or Failed)
 * the controller deletes it, and with it what it owns (its PodCheckpoint, so
 * the checkpoint's stored data and images go as a deleted checkpoint's do).
 * The restored pod of a Succeeded migration is the workload and stays; unset,
 * a finished migration stays until someone deletes it.
 * @module
 */
import type { PodMigration, PodMigrationStatus } from "../api/mod.ts";
import type { Logger } from "../base/log.ts";
import type { ReconcilerDeps } from "./deps.ts";

/**
 * For a finished migration with a TTL: deletes it when the TTL has passed
 * (only this incarnation: the delete names its uid), else says when to look
 * again. Undefined when there is nothing to wait for.
 */
export async function expireFinished(
  deps: Pick<ReconcilerDeps, "lpm">,
  pm: PodMigration,
  status: PodMigrationStatus,
  log: Logger,
  now = Date.now(),
): Promise<{ requeueAfterMs: number } | undefined> {
  const ttl = pm.spec.ttlSecondsAfterFinished;
  if (ttl === undefined || pm.metadata?.deletionTimestamp) return undefined;
  // Without a completion time (an older object): its last phase change, else its creation.
  const ended = [
    status.completionTime,
    status.phaseTransitionTimestamps?.at(-1)?.phaseTransitionTimestamp,
    pm.metadata?.creationTimestamp,
  ].map((t) => t === undefined ? NaN : new Date(t).getTime()).find((t) => !Number.isNaN(t)) ?? now;
  const due = ended + ttl * 1000;
  if (now < due) return { requeueAfterMs: due - now };
  await deps.lpm.delete("podmigrations", pm.metadata!.namespace!, pm.metadata!.name!, {
    uid: pm.metadata?.uid,
  });
  log.info("deleted a finished migration after spec.ttlSecondsAfterFinished", {
    phase: status.phase,
    ttlSeconds: ttl,
  });
  return undefined;
}
