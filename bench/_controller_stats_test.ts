import { assertEquals, assertThrows } from "@std/assert";
import {
  compactSeries,
  formatSummary,
  growthPercent,
  highWaterGrowth,
  parseMetrics,
  procStatusKiB,
  summarize,
  sumOf,
} from "./_controller_stats.ts";

Deno.test("bench stats: min/median/max of odd and even counts, unsorted input untouched", () => {
  const xs = [5, 1, 3];
  assertEquals(summarize(xs), { min: 1, median: 3, max: 5 });
  assertEquals(xs, [5, 1, 3]);
  assertEquals(summarize([4, 1, 2, 3]), { min: 1, median: 2.5, max: 4 });
  assertEquals(formatSummary(summarize([1, 2.25, 4])), "1.0/2.3/4.0");
  assertThrows(() => summarize([]), Error, "no values");
});

Deno.test("bench stats: a compact series keeps each bucket's peak and says the step", () => {
  assertEquals(compactSeries([0, 1, 2], 1), "0 1 2 (every 1 s)");
  assertEquals(compactSeries([0, 9, 1, 1, 0, 0, 7], 0.5, 3), "9 1 7 (max of every 1.5 s)");
  assertEquals(compactSeries([], 1), "(no samples)");
});

Deno.test("bench stats: Prometheus text parsed by name and labels; sums over a label subset", () => {
  const text = [
    "# HELP lpm_controller_reconcile_total Reconciles.",
    "# TYPE lpm_controller_reconcile_total counter",
    'lpm_controller_reconcile_total{controller="podmigration",result="requeue"} 12',
    'lpm_controller_reconcile_total{controller="podmigration",result="success"} 3',
    'lpm_controller_reconcile_total{controller="podcheckpoint",result="success"} 5',
    'lpm_x{a="say \\"hi\\""} +Inf',
    "lpm_up 1",
    "garbage line here",
  ].join("\n");
  const s = parseMetrics(text);
  assertEquals(s.length, 5);
  assertEquals(sumOf(s, "lpm_controller_reconcile_total", { controller: "podmigration" }), 15);
  assertEquals(sumOf(s, "lpm_controller_reconcile_total"), 20);
  assertEquals(sumOf(s, "lpm_up"), 1);
  assertEquals(s[3].labels, { a: 'say \\"hi\\"' });
  assertEquals(sumOf(s, "lpm_missing"), 0);
});

Deno.test("bench stats: VmHWM and VmRSS read from /proc status text", () => {
  const status = "Name:\tdeno\nVmHWM:\t  172092 kB\nVmRSS:\t  160000 kB\n";
  assertEquals(procStatusKiB(status, "VmHWM"), 172092);
  assertEquals(procStatusKiB(status, "VmRSS"), 160000);
  assertThrows(() => procStatusKiB("Name: x", "VmRSS"), Error, "no VmRSS");
});

Deno.test("bench stats: growth compares the medians of the first and last n samples", () => {
  const g = growthPercent([100, 100, 200, 100, 100, 110, 110, 110, 300, 110], 5);
  assertEquals(g.first, 100);
  assertEquals(g.last, 110);
  assertEquals(Math.round(g.percent), 10);
  // Fewer than 2n samples: each end is half of them.
  assertEquals(growthPercent([100, 90], 5).percent, -10);
  assertThrows(() => growthPercent([1]), Error, "at least 2");
});

Deno.test("highWaterGrowth: a sawtooth is not growth, a rising floor and peak is", () => {
  const saw = [110, 180, 112, 178, 111, 179, 110, 180, 113, 178, 112, 179];
  assertEquals(highWaterGrowth(saw, 5).percent, 0);
  const leak = [100, 110, 105, 115, 110, 120, 125, 130, 128, 140];
  const g = highWaterGrowth(leak, 5);
  assertEquals([g.first, g.last], [115, 140]);
  assertEquals(Math.round(g.percent), 22);
});
