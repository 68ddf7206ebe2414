/**
 * Retention and debris collection: keeps at most `maxCount` checkpoints per
 * pod and none older than `maxAge`, then removes debris (temp files, orphan
 * data, incomplete multipart uploads) older than a grace period.
 * @module
 */
import type { CheckpointStore } from "./backend.ts";
import { parseCheckpointKey, podPrefix } from "./keys.ts";

/** A retention policy (`spec.retention`). */
export interface RetentionPolicy {
  /** Go duration, e.g. "72h", "1h30m", "90s". */
  maxAge?: string;
  /** Checkpoints kept per pod. */
  maxCount?: number;
}

/** Options for {@linkcode collectGarbage}. */
export interface GcOptions {
  /** What to keep; no policy removes only debris. */
  retention?: RetentionPolicy;
  /** Only look under this key prefix (e.g. one namespace). */
  prefix?: string;
  /** Debris younger than this is left alone (uploads in flight); default one hour. */
  debrisGraceMs?: number;
  /** The time to measure ages against (default now). */
  now?: Date;
  /** Report what would be deleted without deleting. */
  dryRun?: boolean;
  /** Cancels the run. */
  signal?: AbortSignal;
  /**
   * Checkpoints (by prefix `<ns>/<pod>/<id>/`) that retention must keep
   * whatever their age or rank: something still needs them. They still
   * count towards `maxCount`.
   */
  protect?: (prefix: string) => boolean;
  /**
   * Called before a checkpoint's objects are deleted, with its keys (to
   * remove what lives elsewhere, such as its images). If it throws, the
   * checkpoint is left whole for the next run and the run goes on.
   */
  beforeRemove?: (prefix: string, keys: string[]) => Promise<void>;
}

/** What a GC run did. */
export interface GcResult {
  /** Checkpoint prefixes (`<ns>/<pod>/<id>/`) removed, with why. */
  removed: { prefix: string; reason: "maxAge" | "maxCount" }[];
  /** Objects deleted. */
  objectsDeleted: number;
  /** Debris items removed. */
  debrisRemoved: number;
  /** Checkpoints retention would remove but `protect` kept. */
  protected: string[];
  /** Checkpoints that could not be removed (`beforeRemove` or a delete failed), with why. */
  failed: { prefix: string; error: string }[];
  /** Checkpoints left after the run. */
  checkpoints: number;
  /** Bytes of the checkpoints left after the run. */
  bytes: number;
}

const UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Parses a Go duration ("72h", "1h30m", "1.5s") into milliseconds. */
export function parseGoDuration(text: string): number {
  const s = text.trim();
  if (s === "0") return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) {
      throw new Error(
        `Invalid duration "${text}": expected a Go duration such as "72h" or "1h30m"`,
      );
    }
    total += Number(m[1]) * UNITS[m[2]];
    pos = re.lastIndex;
  }
  if (pos === 0) throw new Error(`Invalid duration "${text}": it is empty`);
  return total;
}

/** One checkpoint as retention weighs it. */
export interface RetentionCandidate {
  /** Its identity (a store prefix, an object name). */
  id: string;
  /** The pod it belongs to: `maxCount` counts per pod. */
  pod: string;
  /** When it was taken (or last written), epoch ms: the newest are kept. */
  time: number;
}

/** What {@linkcode selectForRetention} decided. */
export interface RetentionSelection {
  /** Checkpoints to collect, with why, newest first within a pod. */
  collect: { id: string; reason: "maxAge" | "maxCount" }[];
  /** Checkpoints retention would collect but `protect` keeps. */
  protected: string[];
}

/**
 * The one retention rule, for every store: per pod, newest first (ties by id,
 * the greater first), a checkpoint older than `maxAge` goes, and so does every
 * one past the first `maxCount`; a protected one stays but still counts
 * towards `maxCount`.
 */
export function selectForRetention(
  checkpoints: RetentionCandidate[],
  opts: { retention?: RetentionPolicy; now?: Date; protect?: (id: string) => boolean },
): RetentionSelection {
  const now = (opts.now ?? new Date()).getTime();
  const maxAgeMs = opts.retention?.maxAge ? parseGoDuration(opts.retention.maxAge) : undefined;
  const maxCount = opts.retention?.maxCount;
  if (maxCount !== undefined && (!Number.isInteger(maxCount) || maxCount < 0)) {
    throw new Error(`Invalid retention maxCount ${maxCount}: expected a whole number >= 0`);
  }
  const pods = new Map<string, RetentionCandidate[]>();
  for (const cp of checkpoints) {
    const list = pods.get(cp.pod);
    if (list) list.push(cp);
    else pods.set(cp.pod, [cp]);
  }
  const out: RetentionSelection = { collect: [], protected: [] };
  for (const list of pods.values()) {
    list.sort((a, b) => b.time - a.time || (a.id < b.id ? 1 : -1));
    list.forEach((cp, i) => {
      const reason = maxAgeMs !== undefined && now - cp.time > maxAgeMs
        ? "maxAge"
        : maxCount !== undefined && i >= maxCount
        ? "maxCount"
        : undefined;
      if (reason && opts.protect?.(cp.id)) out.protected.push(cp.id);
      else if (reason) out.collect.push({ id: cp.id, reason });
    });
  }
  return out;
}

interface Checkpoint {
  prefix: string;
  keys: string[];
  newest: number;
  bytes: number;
}

const isMeta = (key: string) => key.endsWith(".json");

/** Applies retention per pod, then removes debris. */
export async function collectGarbage(
  store: CheckpointStore,
  opts: GcOptions = {},
): Promise<GcResult> {
  // Checked before anything is listed: a bad policy fails the run up front.
  selectForRetention([], opts);
  const pods = new Map<string, Map<string, Checkpoint>>();
  for await (const o of store.list(opts.prefix ?? "", { signal: opts.signal })) {
    const p = parseCheckpointKey(o.key);
    if (!p) continue; // not a checkpoint key: retention does not apply
    const pod = podPrefix(p.namespace, p.pod);
    const cpPrefix = `${pod}${p.checkpointId}/`;
    let cps = pods.get(pod);
    if (!cps) pods.set(pod, cps = new Map());
    let cp = cps.get(cpPrefix);
    if (!cp) cps.set(cpPrefix, cp = { prefix: cpPrefix, keys: [], newest: 0, bytes: 0 });
    cp.keys.push(o.key);
    cp.bytes += o.size;
    cp.newest = Math.max(cp.newest, o.lastModified.getTime());
  }
  const result: GcResult = {
    removed: [],
    objectsDeleted: 0,
    debrisRemoved: 0,
    protected: [],
    failed: [],
    checkpoints: 0,
    bytes: 0,
  };
  for (const [pod, cps] of pods) {
    const sorted = [...cps.values()];
    const selection = selectForRetention(
      sorted.map((cp) => ({ id: cp.prefix, pod, time: cp.newest })),
      opts,
    );
    result.protected.push(...selection.protected);
    const doomed = selection.collect.map(({ id, reason }) => ({ cp: cps.get(id)!, reason }));
    const gone = new Set<Checkpoint>();
    for (const { cp, reason } of doomed) {
      if (opts.dryRun) {
        result.removed.push({ prefix: cp.prefix, reason });
        gone.add(cp);
        continue;
      }
      if (opts.signal?.aborted) throw opts.signal.reason;
      try {
        await opts.beforeRemove?.(cp.prefix, cp.keys);
        // Metadata last: a run cut short still finds what the checkpoint was.
        const keys = [...cp.keys].sort((a, b) => Number(isMeta(a)) - Number(isMeta(b)));
        for (const key of keys) {
          if (opts.signal?.aborted) throw opts.signal.reason;
          await store.delete(key);
          result.objectsDeleted++;
        }
        result.removed.push({ prefix: cp.prefix, reason });
        gone.add(cp);
      } catch (err) {
        if (opts.signal?.aborted) throw opts.signal.reason;
        result.failed.push({ prefix: cp.prefix, error: (err as Error).message ?? String(err) });
      }
    }
    for (const cp of sorted) {
      if (gone.has(cp)) continue;
      result.checkpoints++;
      result.bytes += cp.bytes;
    }
  }
  if (!opts.dryRun) {
    result.debrisRemoved = await store.cleanDebris({
      graceMs: opts.debrisGraceMs ?? 3_600_000,
      signal: opts.signal,
    });
  }
  return result;
}
