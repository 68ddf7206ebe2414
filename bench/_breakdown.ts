/**
 * A migration's downtime split into steps from the timestamps lpm and the
 * runtime record, so that every millisecond from the source frozen to the
 * restored container running is in exactly one step:
 *
 *   frozenAt (PodMigration status: the last container paused)
 *   -> CRIU dump (the ContainerCheckpoint's criuStats.frozenTimeUs)
 *   -> archive: the rest of the kubelet checkpoint call (containerd tars the
 *      CRIU images and the rootfs diff) up to checkpointTime
 *   -> upload: the archive stored and the image pushed (completionTime)
 *   -> controller: until the PodMigration enters Transferring
 *   -> pull on target: the Transferring phase (the target's agent pre-pulls)
 *   -> pod start: Restoring until CRIU restore starts (restored pod created,
 *      sandbox, containerd unpacks the checkpoint)
 *   -> CRIU restore: the span of the restored container's restore.log
 *   -> running: until the container's task runs (restoredRunningAt).
 *
 * A step whose timestamps are missing merges into the next one; "other" is
 * whatever the steps do not explain (0 when every timestamp is there).
 * @module
 */

/** The timestamps (epoch ms) a breakdown is made of. */
export interface MigrationTimes {
  /** The source frozen. */
  frozenAt: number;
  /** The restored pod's last container running. */
  runningAt: number;
  /** The last container's checkpoint taken (archive written on the node). */
  dumpedAt?: number;
  /** CRIU's own dump time, ms (the longest container's). */
  criuDumpMs?: number;
  /** The last container's archive stored and image pushed. */
  storedAt?: number;
  /** The PodMigration entered Transferring. */
  transferringAt?: number;
  /** The PodMigration entered Restoring. */
  restoringAt?: number;
  /** CRIU restore of the restored container, from its restore.log. */
  criuRestore?: { startAt: number; endAt: number };
}

/** One step of the downtime. */
export interface Step {
  /** Step name. */
  name: string;
  /** Milliseconds. */
  ms: number;
}

/** Step names, in order (the table's columns). */
export const STEPS = [
  "CRIU dump",
  "archive",
  "upload",
  "controller",
  "pull on target",
  "pod start",
  "CRIU restore",
  "running",
  "other",
] as const;

/** The downtime of `t` split into {@linkcode STEPS} (all of them, in order). */
export function downtimeBreakdown(t: MigrationTimes): Step[] {
  const marks: [string, number | undefined][] = [
    ["CRIU dump", t.criuDumpMs !== undefined ? t.frozenAt + t.criuDumpMs : undefined],
    ["archive", t.dumpedAt],
    ["upload", t.storedAt],
    ["controller", t.transferringAt],
    ["pull on target", t.restoringAt],
    ["pod start", t.criuRestore?.startAt],
    ["CRIU restore", t.criuRestore?.endAt],
    ["running", t.runningAt],
  ];
  const ms = new Map<string, number>(STEPS.map((s) => [s, 0]));
  let from = t.frozenAt;
  let pending: string[] = [];
  for (const [name, at] of marks) {
    pending.push(name);
    if (at === undefined) continue;
    // A missing mark's step merges into this one (the last of the pending names).
    ms.set(pending[pending.length - 1], at - from);
    from = at;
    pending = [];
  }
  const total = t.runningAt - t.frozenAt;
  const explained = [...ms.values()].reduce((a, b) => a + b, 0);
  ms.set("other", total - explained);
  return STEPS.map((name) => ({ name, ms: ms.get(name)! }));
}

/**
 * The span of a CRIU log whose file was last written at `mtimeMs`: CRIU
 * prefixes each line with the seconds since it started, `(00.123456)`, so
 * the last prefix is its run time and the log's start is that much before
 * its last write. Undefined when the log has no timestamped line.
 */
export function criuLogSpan(
  text: string,
  mtimeMs: number,
): { startAt: number; endAt: number } | undefined {
  const all = [...text.matchAll(/^\((\d+)\.(\d{6})\)/gm)];
  const last = all.at(-1);
  if (!last) return undefined;
  const ms = Number(last[1]) * 1000 + Number(last[2]) / 1000;
  return { startAt: mtimeMs - ms, endAt: mtimeMs };
}
