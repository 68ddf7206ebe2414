/**
 * CRIU's dump statistics as a ContainerCheckpoint status holds them. The
 * agent reports CRIU's own names (`frozenTime`, in microseconds, as
 * `archive/stats.ts` decodes them); the API's fields carry the unit in the
 * name (`frozenTimeUs`). Copied through unchanged, the times were pruned by
 * the apiserver (unknown fields) and only the page counts reached the status.
 * @module
 */
import type { CriuStats } from "../api/mod.ts";

const TIMES = ["freezingTime", "frozenTime", "memdumpTime", "memwriteTime"] as const;
const COUNTS = ["pagesScanned", "pagesSkippedParent", "pagesWritten"] as const;

/** The API's CriuStats from an agent's figures (CRIU's names or the API's already). */
export function apiCriuStats(r: Record<string, number>): CriuStats {
  const out: CriuStats = {};
  const ok = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v >= 0;
  for (const t of TIMES) {
    const v = r[`${t}Us`] ?? r[t];
    if (ok(v)) out[`${t}Us`] = Math.round(v);
  }
  for (const c of COUNTS) if (ok(r[c])) out[c] = Math.round(r[c]);
  return out;
}
