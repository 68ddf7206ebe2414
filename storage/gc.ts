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
}

/** What a GC run did. */
export interface GcResult {
  /** Checkpoint prefixes (`<ns>/<pod>/<id>/`) removed, with why. */
  removed: { prefix: string; reason: "maxAge" | "maxCount" }[];
  /** Objects deleted. */
  objectsDeleted: number;
  /** Debris items removed. */
  debrisRemoved: number;
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

interface Checkpoint {
  prefix: string;
  keys: string[];
  newest: number;
}

/** Applies retention per pod, then removes debris. */
export async function collectGarbage(
  store: CheckpointStore,
  opts: GcOptions = {},
): Promise<GcResult> {
  const now = (opts.now ?? new Date()).getTime();
  const maxAgeMs = opts.retention?.maxAge ? parseGoDuration(opts.retention.maxAge) : undefined;
  const maxCount = opts.retention?.maxCount;
  if (maxCount !== undefined && (!Number.isInteger(maxCount) || maxCount < 0)) {
    throw new Error(`Invalid retention maxCount ${maxCount}: expected a whole number >= 0`);
  }
  const pods = new Map<string, Map<string, Checkpoint>>();
  for await (const o of store.list(opts.prefix ?? "", { signal: opts.signal })) {
    const p = parseCheckpointKey(o.key);
    if (!p) continue; // not a checkpoint key: retention does not apply
    const pod = podPrefix(p.namespace, p.pod);
    const cpPrefix = `${pod}${p.checkpointId}/`;
    let cps = pods.get(pod);
    if (!cps) pods.set(pod, cps = new Map());
    let cp = cps.get(cpPrefix);
    if (!cp) cps.set(cpPrefix, cp = { prefix: cpPrefix, keys: [], newest: 0 });
    cp.keys.push(o.key);
    cp.newest = Math.max(cp.newest, o.lastModified.getTime());
  }
  const result: GcResult = { removed: [], objectsDeleted: 0, debrisRemoved: 0 };
  for (const cps of pods.values()) {
    const sorted = [...cps.values()].sort((a, b) =>
      b.newest - a.newest || (a.prefix < b.prefix ? 1 : -1)
    );
    sorted.forEach((cp, i) => {
      if (maxAgeMs !== undefined && now - cp.newest > maxAgeMs) {
        result.removed.push({ prefix: cp.prefix, reason: "maxAge" });
      } else if (maxCount !== undefined && i >= maxCount) {
        result.removed.push({ prefix: cp.prefix, reason: "maxCount" });
      }
    });
    if (opts.dryRun) continue;
    for (const r of result.removed) {
      const cp = cps.get(r.prefix);
      if (!cp) continue;
      for (const key of cp.keys) {
        if (opts.signal?.aborted) throw opts.signal.reason;
        await store.delete(key);
        result.objectsDeleted++;
      }
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
