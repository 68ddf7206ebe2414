/**
 * The frozen source of a migration. Its PodCheckpoint (leaveRunning false)
 * froze every container before any was dumped; from then on the migration
 * renews the freeze at each step, confirms it at hand-over (the agent stops
 * its deadline), deletes the source without grace and kills the frozen
 * processes, so they never run past the checkpoint. On any failure before
 * hand-over the source is thawed and goes on where it stopped, once the
 * restored pod is deleted (until then its freeze is renewed).
 * @module
 */
import type { PodCheckpoint, PodMigration } from "../api/mod.ts";
import type { FreezeRef, FreezeStatus } from "../contract/agent.ts";
import type { ReconcilerDeps } from "./deps.ts";
import { controlFreeze, DEFAULT_FREEZE_DEADLINE_S, type FreezeAction } from "./pod_freeze.ts";
import {
  cond,
  getCondition,
  MigrationFailure,
  type MigrationStatus,
  PM_CONDITIONS,
} from "./pod_migration_status.ts";

/** The PodMigration status as the reconciler edits it. */
type Status = NonNullable<PodMigration["status"]>;

/** The freeze a migration's source is held by, when its checkpoint froze it. */
export interface SourceFreeze {
  /** Key, namespace and pod. */
  ref: FreezeRef;
  /** Node of the source (its agent holds the freeze). */
  node: string;
}

/** The source's freeze, read from the migration's PodCheckpoint. */
export async function sourceFreeze(
  deps: ReconcilerDeps,
  pm: PodMigration,
  status: Status,
): Promise<SourceFreeze | undefined> {
  const ns = pm.metadata!.namespace!;
  const pc = await deps.cache.get<PodCheckpoint>("podcheckpoints", ns, pm.metadata!.name!);
  const key = pc?.status?.freeze?.key;
  const node = pc?.status?.nodeName ?? status.sourceNode;
  if (!key || !node) return undefined;
  return { ref: { key, namespace: ns, pod: pm.spec.podName }, node };
}

/** Acts on the source's freeze. */
export async function sourceFreezeAction(
  deps: ReconcilerDeps,
  f: SourceFreeze,
  action: FreezeAction,
  pm?: PodMigration,
): Promise<FreezeStatus> {
  return await controlFreeze(
    deps,
    f.node,
    f.ref,
    action,
    action === "EXTEND" ? pm?.spec.freezeDeadlineSeconds ?? DEFAULT_FREEZE_DEADLINE_S : undefined,
  );
}

/** Describes a freeze state that is not "frozen" for a failure message. */
export function notFrozenReason(f: FreezeStatus): string {
  return `its node's agent reports the freeze "${f.state}"${f.message ? ` (${f.message})` : ""}`;
}

/**
 * Renews the source's freeze; fails the migration when the source is no
 * longer frozen (its agent's deadline thawed it: it ran past the checkpoint).
 */
export async function renewSourceFreeze(
  deps: ReconcilerDeps,
  pm: PodMigration,
  status: MigrationStatus,
): Promise<void> {
  if (getCondition(status, PM_CONDITIONS.sourceFrozen)?.status !== "True") return;
  const freeze = await sourceFreeze(deps, pm, status);
  if (!freeze) return;
  const s = await sourceFreezeAction(deps, freeze, "EXTEND", pm);
  if (s.state === "frozen" || s.state === "confirmed") return;
  cond(status, pm, deps.now(), {
    type: PM_CONDITIONS.sourceFrozen,
    status: "False",
    reason: "DeadlineThawed",
    message: `Source pod "${pm.spec.podName}" is no longer frozen: ${notFrozenReason(s)}`,
  });
  deps.events.normal(pm, "SourceThawed", `Source pod "${pm.spec.podName}" thawed by its agent`);
  throw new MigrationFailure(
    "SourceThawed",
    `The source ran again before hand-over (${notFrozenReason(s)}): its checkpoint is stale`,
  );
}
