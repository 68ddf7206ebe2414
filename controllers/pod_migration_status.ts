/**
 * The PodMigration status as its reconciler edits it: the conditions it
 * owns, how they are set, and the failure that ends a migration.
 * @module
 */
import type { PodMigration } from "../api/mod.ts";
import { type Condition, setCondition } from "./_status.ts";

/** The PodMigration status as the reconciler edits it. */
export type MigrationStatus = NonNullable<PodMigration["status"]>;

/** Condition types the PodMigration reconciler owns. */
export const PM_CONDITIONS = {
  validated: "Validated",
  admitted: "Admitted",
  sourceFrozen: "SourceFrozen",
  checkpointed: "Checkpointed",
  transferred: "Transferred",
  restored: "Restored",
  sourceDeleted: "SourceDeleted",
  succeeded: "Succeeded",
} as const;

/** A failure that ends the migration, with a machine reason and a message for people. */
export class MigrationFailure extends Error {
  /** Creates the failure. */
  constructor(readonly reason: string, message: string) {
    super(message);
  }
}

/** Sets a condition this reconciler owns, stamped with the object's generation. */
export function cond(
  status: MigrationStatus,
  pm: PodMigration,
  now: Date,
  c: Omit<Condition, "lastTransitionTime">,
) {
  setCondition((status.conditions ??= []) as Condition[], {
    observedGeneration: pm.metadata?.generation,
    ...c,
  }, now);
}

/** The condition of `type`, if set. */
export function getCondition(status: MigrationStatus, type: string): Condition | undefined {
  return (status.conditions as Condition[] | undefined)?.find((c) => c.type === type);
}

/**
 * The node the migration moves the pod to: the spec's, else the one the
 * controller chose (in the status once validated).
 */
export function targetNodeOf(pm: PodMigration, status?: MigrationStatus): string {
  return pm.spec.targetNode ?? status?.targetNode ?? pm.status?.targetNode ?? "";
}
