/**
 * The migration benchmark's results, summarised: per size and mode the
 * median (min-max) floor, downtime, total and downtime/floor ratio over the
 * rounds, the downtime's breakdown by step (medians), the tables printed, the
 * JSON lines (`--json`) and the chart's series.
 * @module
 */
import { formatSpread, formatTable, type Spread, spread } from "./_stats.ts";
import { type Step, STEPS } from "./_breakdown.ts";
import type { Series } from "./_svg_chart.ts";

/** How lpm moved the pod. */
/** The lpm modes, in table order. `encrypted`: stop-and-copy through a class with spec.encryption. */
export const MODES = ["stop-and-copy", "pre-copy", "encrypted"] as const;
/** An lpm mode. */
export type Mode = typeof MODES[number];

/** One lpm migration of one round. */
export interface LpmRun {
  /** Mode. */
  mode: Mode;
  /** Source frozen to restored container running, seconds (status.timings.downtimeMs). */
  downtimeS: number;
  /** PodMigration start to completion, seconds (status.timings.totalMs). */
  totalS: number;
  /** The downtime by step. */
  steps: Step[];
}

/** One round at one size: the floor and lpm's runs, measured back to back. */
export interface Round {
  /** Workload memory, MiB. */
  sizeMiB: number;
  /** CRIU dump + restore of the identical host process, seconds. */
  floorS: number;
  /** lpm's migrations in this round. */
  runs: LpmRun[];
}

/** Medians and spreads of one size and mode. */
export interface Summary {
  /** Workload memory, MiB. */
  sizeMiB: number;
  /** Mode. */
  mode: Mode;
  /** Rounds summarised. */
  rounds: number;
  /** Floor seconds. */
  floor: Spread;
  /** Downtime seconds. */
  downtime: Spread;
  /** Total seconds. */
  total: Spread;
  /** Per-round downtime / floor (each round's own floor). */
  ratio: Spread;
  /** Median milliseconds of each step. */
  stepsMs: Record<string, number>;
}

/** Summaries of `rounds`, by size (ascending) then mode. */
export function summarize(rounds: readonly Round[]): Summary[] {
  const out: Summary[] = [];
  const sizes = [...new Set(rounds.map((r) => r.sizeMiB))].sort((a, b) => a - b);
  for (const sizeMiB of sizes) {
    const at = rounds.filter((r) => r.sizeMiB === sizeMiB);
    for (const mode of MODES) {
      const pairs = at.flatMap((r) =>
        r.runs.filter((x) => x.mode === mode).map((run) => ({ floorS: r.floorS, run }))
      );
      if (pairs.length === 0) continue;
      const stepsMs: Record<string, number> = {};
      for (const s of STEPS) {
        stepsMs[s] = spread(pairs.map((p) => p.run.steps.find((x) => x.name === s)?.ms ?? 0))
          .median;
      }
      out.push({
        sizeMiB,
        mode,
        rounds: pairs.length,
        floor: spread(pairs.map((p) => p.floorS)),
        downtime: spread(pairs.map((p) => p.run.downtimeS)),
        total: spread(pairs.map((p) => p.run.totalS)),
        ratio: spread(pairs.map((p) => p.run.downtimeS / p.floorS)),
        stepsMs,
      });
    }
  }
  return out;
}

/** The main table: one row per size and mode, median (min-max). */
export function resultTable(sums: readonly Summary[]): string {
  return formatTable(
    ["MiB", "mode", "rounds", "floor s", "downtime s", "total s", "downtime/floor"],
    sums.map((s) => [
      String(s.sizeMiB),
      s.mode,
      String(s.rounds),
      formatSpread(s.floor),
      formatSpread(s.downtime),
      formatSpread(s.total),
      formatSpread(s.ratio),
    ]),
  );
}

/** The breakdown table: median seconds of each step, per size and mode. */
export function breakdownTable(sums: readonly Summary[]): string {
  return formatTable(
    ["MiB", "mode", ...STEPS, "sum"],
    sums.map((s) => [
      String(s.sizeMiB),
      s.mode,
      ...STEPS.map((k) => (s.stepsMs[k] / 1000).toFixed(2)),
      (STEPS.reduce((a, k) => a + s.stepsMs[k], 0) / 1000).toFixed(2),
    ]),
  );
}

/** `--json`: one JSON object per line per size and mode (medians, seconds). */
export function jsonLines(sums: readonly Summary[]): string[] {
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return sums.map((s) =>
    JSON.stringify({
      sizeMiB: s.sizeMiB,
      mode: s.mode,
      floorS: r(s.floor.median),
      downtimeS: r(s.downtime.median),
      totalS: r(s.total.median),
      ratio: r(s.ratio.median),
    })
  );
}

/** The chart's lines: the floor, then downtime and total of each mode present (medians). */
export function chartSeries(sums: readonly Summary[]): Series[] {
  const floorBySize = new Map(sums.map((s) => [s.sizeMiB, s.floor.median]));
  const series: Series[] = [{
    name: "floor (CRIU dump+restore)",
    color: "#2a8f2a",
    dashed: true,
    points: [...floorBySize].map(([x, y]) => [x, y]),
  }];
  const colors: Record<Mode, string> = {
    "stop-and-copy": "#c0392b",
    "pre-copy": "#2e5fb8",
    encrypted: "#8e44ad",
  };
  for (const mode of MODES) {
    const of = sums.filter((s) => s.mode === mode);
    if (of.length === 0) continue;
    series.push(
      {
        name: `${mode} downtime`,
        color: colors[mode],
        points: of.map((s) => [s.sizeMiB, s.downtime.median]),
      },
      {
        name: `${mode} total`,
        color: colors[mode],
        dashed: true,
        points: of.map((s) => [s.sizeMiB, s.total.median]),
      },
    );
  }
  return series;
}

/**
 * Least-squares slope of `points` (seconds per MiB), NaN with fewer than two
 * distinct x.
 */
export function slope(points: readonly [number, number][]): number {
  const n = points.length;
  const mx = points.reduce((a, p) => a + p[0], 0) / n;
  const my = points.reduce((a, p) => a + p[1], 0) / n;
  const sxx = points.reduce((a, p) => a + (p[0] - mx) ** 2, 0);
  if (!(sxx > 0)) return NaN;
  return points.reduce((a, p) => a + (p[0] - mx) * (p[1] - my), 0) / sxx;
}
