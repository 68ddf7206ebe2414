/**
 * What of an agent operation's progress goes into a ContainerCheckpoint's
 * status. The controller polls a frozen pod's operation every 100 ms
 * (frozen_poll.ts), and each poll's new byte count was a status patch (and
 * that patch woke the PodCheckpoint): ~12 patches for one small checkpoint.
 * The status now moves on a new step, a new total, or a quarter of the
 * total more done; between those the last recorded figures stay.
 * @module
 */

/** ContainerCheckpoint.status.progress. */
export interface Progress {
  phase?: string;
  bytesDone?: number;
  bytesTotal?: number;
}

/** Quarters of the total done (-1 without a total). */
function quarter(p: Progress): number {
  return p.bytesTotal ? Math.floor(((p.bytesDone ?? 0) * 4) / p.bytesTotal) : -1;
}

/** The progress to record: `next` when it says something new (see the module doc), else `prev`. */
export function progressToRecord(prev: Progress | undefined, next: Progress): Progress {
  if (!prev || prev.phase !== next.phase || prev.bytesTotal !== next.bytesTotal) return next;
  if (!next.bytesTotal) {
    // No total: a first byte count, or twice the last one.
    return (next.bytesDone ?? 0) >= Math.max(1, 2 * (prev.bytesDone ?? 0)) ? next : prev;
  }
  return quarter(next) !== quarter(prev) ? next : prev;
}

/** Progress-only status patches of one checkpoint are at least this far apart. */
export const PROGRESS_INTERVAL_MS = 2000;

/**
 * Spaces a running checkpoint's progress-only status patches at least
 * {@linkcode PROGRESS_INTERVAL_MS} apart (per object): a checkpoint of a
 * small pod went through five steps in under a second, a patch each. The
 * first progress and a finished operation's go at once. Forgetting (a
 * controller restart) only lets one patch through early.
 */
export class ProgressPacer {
  readonly #last = new Map<string, number>();

  /** Creates a pacer with `intervalMs` between an object's progress patches. */
  constructor(readonly intervalMs = PROGRESS_INTERVAL_MS) {}

  /** The progress to record for object `key` at `nowMs` (see {@linkcode progressToRecord}). */
  pace(key: string, prev: Progress | undefined, next: Progress, nowMs: number): Progress {
    const wanted = progressToRecord(prev, next);
    if (wanted === prev) return prev;
    const last = this.#last.get(key);
    if (prev && last !== undefined && nowMs - last < this.intervalMs) return prev;
    this.#last.delete(key); // re-inserted last: the oldest entries come first
    this.#last.set(key, nowMs);
    if (this.#last.size > 10_000) this.#last.delete(this.#last.keys().next().value!);
    return wanted;
  }

  /** Forgets `key` (its operation ended). */
  forget(key: string): void {
    this.#last.delete(key);
  }
}
