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
