/**
 * How many migrations run at once: at most `maxParallel` in the cluster and
 * `maxOutboundPerNode` leaving any one node (KubeVirt's defaults, 5 and 2).
 * A migration is "running" from Checkpointing until it ends; one over a
 * limit stays Pending with condition Admitted=False and comes back on its
 * own. The informer cache lags behind this controller's own writes, and two
 * workers admit at the same time, so an admission holds its slot here until
 * the cache shows the migration past Pending (or for at most a minute, in
 * case its status patch never landed).
 * @module
 */

/** The cluster-wide limits (controller flags --max-parallel-migrations, --max-outbound-per-node). */
export interface MigrationLimits {
  /** Migrations running at once in the cluster. */
  maxParallel: number;
  /** Migrations running at once whose source pod is on the same node. */
  maxOutboundPerNode: number;
}

/** KubeVirt's defaults (parallelMigrationsPerCluster 5, parallelOutboundMigrationsPerNode 2). */
export const DEFAULT_MIGRATION_LIMITS: MigrationLimits = { maxParallel: 5, maxOutboundPerNode: 2 };

/** A migration as the limits see it. */
export interface MigrationSlot {
  /** namespace/name. */
  key: string;
  /** The source node. */
  node: string;
}

const HOLD_MS = 60_000;

/** Hands out slots under the limits; one per controller process. */
export class MigrationSlots {
  #held = new Map<string, MigrationSlot & { at: number }>();

  /** Creates the slots for `limits`; `now` is the clock (tests). */
  constructor(
    readonly limits: MigrationLimits = DEFAULT_MIGRATION_LIMITS,
    readonly now: () => number = Date.now,
  ) {}

  /**
   * Takes a slot for `want`, or says why it waits. `running` are the
   * migrations the cache shows past Pending and not ended; `pending` the
   * keys it still shows Pending. Synchronous on purpose: no other admission
   * runs between the count and the hold.
   */
  admit(
    want: MigrationSlot,
    { running, pending }: { running: MigrationSlot[]; pending: Set<string> },
  ): { ok: true } | { ok: false; reason: string } {
    const t = this.now();
    for (const [k, h] of this.#held) {
      // Seen running (or ended, or gone): the cache counts it from now on.
      if (!pending.has(k) || t - h.at > HOLD_MS) this.#held.delete(k);
    }
    const taken = new Map<string, MigrationSlot>();
    for (const s of [...running, ...this.#held.values()]) {
      if (s.key !== want.key) taken.set(s.key, s);
    }
    const all = [...taken.values()];
    const out = all.filter((s) => s.node === want.node);
    if (all.length >= this.limits.maxParallel) {
      return {
        ok: false,
        reason: `${all.length} migrations already run in the cluster (--max-parallel-migrations ` +
          `${this.limits.maxParallel}); waiting for one to end`,
      };
    }
    if (out.length >= this.limits.maxOutboundPerNode) {
      return {
        ok: false,
        reason: `${out.length} migrations already leave node "${want.node}" ` +
          `(--max-outbound-per-node ${this.limits.maxOutboundPerNode}); waiting for one to end`,
      };
    }
    this.#held.set(want.key, { ...want, at: t });
    return { ok: true };
  }
}

/** Phases in which a migration holds a slot under the limits. */
export const SLOT_PHASES: ReadonlySet<string> = new Set([
  "PreCopying",
  "Checkpointing",
  "Transferring",
  "Restoring",
]);

/** True when a migration moving from phase `was` to `now` (undefined: gone) gives its slot back. */
export function freesSlot(was: string | undefined, now: string | undefined): boolean {
  return was !== undefined && SLOT_PHASES.has(was) && !SLOT_PHASES.has(now ?? "");
}

/** A migration that waits for a slot (Pending with Admitted=False), as the wake-up sees it. */
export interface WaitingMigration extends MigrationSlot {
  /** metadata.creationTimestamp: the oldest waiter goes first. */
  created: string;
}

/**
 * Which waiting migrations to look at again when a slot frees: the oldest
 * of each source node (a node at its outbound limit does not hold up the
 * others). A slot frees one migration at a time, so this wakes at most one
 * per node, not every waiter: with hundreds waiting, a poll of each every
 * few seconds was most of the controller's work.
 */
export function toWake(waiting: readonly WaitingMigration[]): string[] {
  const oldest = new Map<string, WaitingMigration>();
  for (const w of waiting) {
    const o = oldest.get(w.node);
    if (!o || w.created < o.created || (w.created === o.created && w.key < o.key)) {
      oldest.set(w.node, w);
    }
  }
  return [...oldest.values()].map((w) => w.key).sort();
}
