/**
 * The pure parts of `deno task bench controller`: min/median/max, a compact
 * series of samples, the Prometheus text the controller serves, /proc
 * memory fields, and growth from the first hops to the last.
 * @module
 */

/** Smallest, median and largest of some numbers. */
export interface Summary {
  min: number;
  median: number;
  max: number;
}

/** min/median/max of `xs` (the median of an even count is the mean of the middle two). */
export function summarize(xs: readonly number[]): Summary {
  if (!xs.length) throw new Error("summarize: no values");
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { min: s[0], median, max: s.at(-1)! };
}

/** `min/median/max` with `digits` decimals, e.g. "1.0/2.5/4.0". */
export function formatSummary(s: Summary, digits = 1): string {
  return [s.min, s.median, s.max].map((v) => v.toFixed(digits)).join("/");
}

/**
 * `samples` (one every `stepS` seconds) as at most `width` numbers, each the
 * largest of the samples it stands for (a queue's peaks must show), e.g.
 * "0 4 12 9 1 0 (max of every 2 s)".
 */
export function compactSeries(samples: readonly number[], stepS: number, width = 30): string {
  if (!samples.length) return "(no samples)";
  const per = Math.max(1, Math.ceil(samples.length / width));
  const out: number[] = [];
  for (let i = 0; i < samples.length; i += per) {
    out.push(Math.max(...samples.slice(i, i + per)));
  }
  const every = Number((per * stepS).toFixed(2));
  return `${out.join(" ")} (${per > 1 ? "max of " : ""}every ${every} s)`;
}

/** One series of the Prometheus text format: name, labels, value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (comments and malformed lines skipped). */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line.trim());
    if (!m) continue;
    const value = m[3] === "+Inf" ? Infinity : m[3] === "-Inf" ? -Infinity : Number(m[3]);
    if (Number.isNaN(value)) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value });
  }
  return out;
}

/** The sum of the series of `name` whose labels include `match`. */
export function sumOf(
  samples: readonly Sample[],
  name: string,
  match: Record<string, string> = {},
): number {
  return samples.filter((s) =>
    s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)
  ).reduce((t, s) => t + s.value, 0);
}

/** A memory field of /proc/<pid>/status in KiB (VmHWM: peak RSS, VmRSS: current). */
export function procStatusKiB(status: string, field: "VmHWM" | "VmRSS"): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status);
  if (!m) throw new Error(`/proc status has no ${field} line`);
  return Number(m[1]);
}

/**
 * Growth from the first `n` samples to the last `n`, in percent of the
 * first (medians of each end, so one GC pause does not decide it).
 */
export function growthPercent(xs: readonly number[], n = 5): Growth {
  return endsGrowth(xs, n, (w) => summarize(w).median);
}

/** Growth between the two ends of a series: each end's statistic and the percent change. */
export interface Growth {
  first: number;
  last: number;
  percent: number;
}

/** `stat` of the first `n` samples against `stat` of the last `n`, in percent of the first. */
function endsGrowth(xs: readonly number[], n: number, stat: (w: number[]) => number): Growth {
  if (xs.length < 2) throw new Error("growth needs at least 2 samples");
  const k = Math.min(n, Math.floor(xs.length / 2));
  const first = stat(xs.slice(0, k));
  const last = stat(xs.slice(-k));
  return { first, last, percent: ((last - first) / first) * 100 };
}

/**
 * The high-water of the first `n` samples against that of the last `n`, in
 * percent: what a leak raises, while a sawtooth (an agent swinging 110 <->
 * 180 MiB from one hop to the next as its collector runs) leaves it alone,
 * where the medians of {@linkcode growthPercent} depend on which phase of
 * the tooth each window caught.
 */
export function highWaterGrowth(xs: readonly number[], n = 10): Growth {
  return endsGrowth(xs, n, (w) => Math.max(...w));
}
