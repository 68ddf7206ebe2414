/**
 * The small statistics and text formatting the benchmarks share: min /
 * median / max of a sample, a round's order (alternating which side runs
 * first), plain-text tables and JSON lines.
 * @module
 */

/** Min, median and max of a sample. */
export interface Spread {
  /** Smallest value. */
  min: number;
  /** Median (mean of the two middle values for an even count). */
  median: number;
  /** Largest value. */
  max: number;
}

/** Min, median and max of `xs` (NaN for all three when `xs` is empty). */
export function spread(xs: readonly number[]): Spread {
  if (xs.length === 0) return { min: NaN, median: NaN, max: NaN };
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { min: s[0], median, max: s[s.length - 1] };
}

/** `median (min-max)` with `digits` decimals, or "-" for an empty sample. */
export function formatSpread(s: Spread, digits = 2): string {
  if (Number.isNaN(s.median)) return "-";
  return `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}-${s.max.toFixed(digits)})`;
}

/**
 * The sides of round `round` (0-based) in the order they run: even rounds
 * as given, odd rounds reversed, so over an even number of rounds the first
 * and last sides run first equally often (this VM favours whatever runs first).
 */
export function roundOrder<T>(round: number, sides: readonly T[]): T[] {
  return round % 2 === 0 ? [...sides] : [...sides].reverse();
}

/** A plain-text table: a header, a rule, then the rows, columns padded to their widest cell. */
export function formatTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length)));
  const line = (r: readonly string[]) =>
    widths.map((w, c) => (r[c] ?? "").padEnd(w)).join(" | ").trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("-|-"), ...rows.map(line)].join("\n");
}

/**
 * Parses a comma-separated list of positive integers (`--sizes 16,256`);
 * throws naming `flag` on anything else.
 */
export function parsePositiveInts(text: string, flag: string): number[] {
  const parts = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (parts.length === 0 || parts.some((p) => !/^[1-9]\d{0,5}$/.test(p))) {
    throw new Error(`Bad --${flag} "${text}": want positive integers separated by commas`);
  }
  return parts.map(Number);
}
