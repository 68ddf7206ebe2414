import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import {
  breakdownTable,
  chartSeries,
  jsonLines,
  resultTable,
  type Round,
  slope,
  summarize,
} from "./_migration_report.ts";
import { STEPS } from "./_breakdown.ts";

const steps = (dumpMs: number, restoreMs: number) =>
  STEPS.map((name) => ({
    name,
    ms: name === "CRIU dump" ? dumpMs : name === "CRIU restore" ? restoreMs : 0,
  }));

const rounds: Round[] = [
  {
    sizeMiB: 256,
    floorS: 1,
    runs: [{ mode: "stop-and-copy", downtimeS: 4, totalS: 5, steps: steps(3000, 1000) }],
  },
  {
    sizeMiB: 16,
    floorS: 0.2,
    runs: [{ mode: "stop-and-copy", downtimeS: 2, totalS: 3, steps: steps(1500, 500) }],
  },
  {
    sizeMiB: 256,
    floorS: 2,
    runs: [
      { mode: "stop-and-copy", downtimeS: 5, totalS: 6, steps: steps(4000, 1000) },
      { mode: "pre-copy", downtimeS: 2, totalS: 9, steps: steps(1500, 500) },
    ],
  },
];

Deno.test("summarize: medians per size and mode, ratios from each round's own floor", () => {
  const s = summarize(rounds);
  assertEquals(s.map((x) => [x.sizeMiB, x.mode, x.rounds]), [
    [16, "stop-and-copy", 1],
    [256, "stop-and-copy", 2],
    [256, "pre-copy", 1],
  ]);
  const sc256 = s[1];
  assertEquals(sc256.floor, { min: 1, median: 1.5, max: 2 });
  assertEquals(sc256.downtime, { min: 4, median: 4.5, max: 5 });
  assertEquals(sc256.ratio, { min: 2.5, median: 3.25, max: 4 }); // 5/2 and 4/1
  assertEquals(sc256.stepsMs["CRIU dump"], 3500);
  assertEquals(s[2].ratio.median, 1); // pre-copy 2 s against its round's 2 s floor
});

Deno.test("jsonLines: one object per size and mode with the issue's fields", () => {
  const lines = jsonLines(summarize(rounds)).map((l) => JSON.parse(l));
  assertEquals(lines[1], {
    sizeMiB: 256,
    mode: "stop-and-copy",
    floorS: 1.5,
    downtimeS: 4.5,
    totalS: 5.5,
    ratio: 3.25,
  });
  assertEquals(lines.length, 3);
});

Deno.test("tables and chart series carry every size and mode", () => {
  const s = summarize(rounds);
  const t = resultTable(s);
  assertStringIncludes(t, "downtime/floor");
  assertStringIncludes(t, "4.50 (4.00-5.00)");
  const b = breakdownTable(s);
  assertStringIncludes(b, "CRIU restore");
  assertStringIncludes(b.split("\n")[3], "3.50"); // 256 stop-and-copy: CRIU dump median
  const series = chartSeries(s);
  assertEquals(series.map((x) => x.name), [
    "floor (CRIU dump+restore)",
    "stop-and-copy downtime",
    "stop-and-copy total",
    "pre-copy downtime",
    "pre-copy total",
  ]);
  assertEquals(series[1].points, [[16, 2], [256, 4.5]]);
});

Deno.test("slope: least squares, NaN without two sizes", () => {
  assert(Math.abs(slope([[16, 1], [256, 4], [1024, 13.6]]) - 0.0125) < 1e-4);
  assertEquals(Number.isNaN(slope([[16, 1]])), true);
});
