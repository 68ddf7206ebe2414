/**
 * What `deno task bench controller` reads of a running controller: its
 * /metrics (API requests, reconciles, queue depth) and its /proc memory;
 * and how one batch's figures are printed.
 * @module
 */
import {
  compactSeries,
  parseMetrics,
  procStatusKiB,
  type Sample,
  summarize,
  sumOf,
} from "./_controller_stats.ts";

/** The controller's metrics, parsed. */
export async function scrape(port: number): Promise<Sample[]> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  if (!res.ok) throw new Error(`GET /metrics answered ${res.status}`);
  return parseMetrics(await res.text());
}

/** A memory field of process `pid`, in MiB. */
export function memMiB(pid: number, field: "VmHWM" | "VmRSS"): number {
  return procStatusKiB(Deno.readTextFileSync(`/proc/${pid}/status`), field) / 1024;
}

/** The counters a batch is charged with. */
export interface Counts {
  apiRequests: number;
  reads: number;
  pmReconciles: number;
  allReconciles: number;
  /** API requests by `verb resource`. */
  byRequest: Record<string, number>;
}

/** The counters now. */
export function counts(s: Sample[]): Counts {
  const reads = s.filter((x) =>
    x.name === "lpm_api_requests_total" && (x.labels.verb === "get" || x.labels.verb === "list")
  ).reduce((t, x) => t + x.value, 0);
  const byRequest: Record<string, number> = {};
  for (const x of s) {
    if (x.name !== "lpm_api_requests_total") continue;
    const k = `${x.labels.verb} ${x.labels.resource}`;
    byRequest[k] = (byRequest[k] ?? 0) + x.value;
  }
  return {
    byRequest,
    apiRequests: sumOf(s, "lpm_api_requests_total"),
    reads,
    pmReconciles: sumOf(s, "lpm_controller_reconcile_total", { controller: "podmigration" }),
    allReconciles: sumOf(s, "lpm_controller_reconcile_total"),
  };
}

/** `after - before`, per migration. */
export function perMigration(before: Counts, after: Counts, n: number): Counts {
  const d = (k: Exclude<keyof Counts, "byRequest">) => (after[k] - before[k]) / n;
  const byRequest: Record<string, number> = {};
  for (const [k, v] of Object.entries(after.byRequest)) {
    const per = (v - (before.byRequest[k] ?? 0)) / n;
    if (per > 0) byRequest[k] = per;
  }
  return {
    byRequest,
    apiRequests: d("apiRequests"),
    reads: d("reads"),
    pmReconciles: d("pmReconciles"),
    allReconciles: d("allReconciles"),
  };
}

/** Samples the PodMigration queue depth and the controller's RSS every `stepMs` until stopped. */
export function sampleQueue(
  port: number,
  pid: number,
  stepMs = 1000,
): { stop(): { depth: number[]; rssMiB: number[] } } {
  const depth: number[] = [];
  const rssMiB: number[] = [];
  const timer = setInterval(() => {
    rssMiB.push(memMiB(pid, "VmRSS"));
    scrape(port).then(
      (s) => depth.push(sumOf(s, "lpm_workqueue_depth", { controller: "podmigration" })),
      () => {},
    );
  }, stepMs);
  return {
    stop() {
      clearInterval(timer);
      return { depth, rssMiB };
    },
  };
}

/** What one batch printed. */
export interface BatchResult {
  label: string;
  n: number;
  succeeded: number;
  failed: number;
  wallS: number;
  peakRssMiB: number;
  per: Counts;
  depth: number[];
  rssMiB: number[];
}

/** Prints a batch's figures, with `baseline` (per-migration costs of single migrations) beside. */
export function printBatch(r: BatchResult, baseline?: Counts[]): void {
  const line = (what: string, v: number, base?: number[]) => {
    const b = base?.length ? summarize(base) : undefined;
    const side = b
      ? `   single: ${b.min.toFixed(1)}/${b.median.toFixed(1)}/${
        b.max.toFixed(1)
      } (min/median/max)` +
        `   ratio ${(v / b.median).toFixed(2)}`
      : "";
    console.log(`  ${what.padEnd(34)} ${v.toFixed(1).padStart(7)}${side}`);
  };
  console.log(
    `${r.label}: ${r.n} PodMigrations: ${r.succeeded} Succeeded, ${r.failed} Failed, ` +
      `${r.n - r.succeeded - r.failed} unfinished; wall ${r.wallS.toFixed(1)} s`,
  );
  console.log(
    `  controller peak RSS (VmHWM)       ${r.peakRssMiB.toFixed(1).padStart(7)} MiB` +
      `   RSS over the run: ${compactSeries(r.rssMiB.map((x) => Math.round(x)), 1)}`,
  );
  line("API requests per migration", r.per.apiRequests, baseline?.map((c) => c.apiRequests));
  line("  of which gets and lists", r.per.reads, baseline?.map((c) => c.reads));
  line(
    "PodMigration reconciles/migration",
    r.per.pmReconciles,
    baseline?.map((c) => c.pmReconciles),
  );
  line("all reconciles per migration", r.per.allReconciles, baseline?.map((c) => c.allReconciles));
  console.log(`  PodMigration queue depth: ${compactSeries(r.depth, 1)}`);
  const top = Object.entries(r.per.byRequest).sort((a, b) => b[1] - a[1]).slice(0, 8);
  console.log(
    `  requests per migration: ${top.map(([k, v]) => `${v.toFixed(1)} ${k}`).join(", ")}`,
  );
}
