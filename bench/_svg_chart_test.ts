import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { escapeXml, lineChart, tickStep } from "./_svg_chart.ts";

Deno.test("tickStep picks 1, 2 or 5 times a power of ten", () => {
  assertEquals(tickStep(1024), 500);
  assertEquals(tickStep(1000), 200);
  assertEquals(tickStep(14.2), 5);
  assertEquals(tickStep(0.9), 0.2);
  assertEquals(tickStep(0), 1);
});

Deno.test("lineChart draws one polyline per series with points, escapes text, is one svg", () => {
  const svg = lineChart({
    title: "downtime <vs> floor & total",
    xLabel: "MiB",
    yLabel: "s",
    note: "run x",
    series: [
      { name: "lpm", color: "#c00", points: [[1024, 40], [16, 3], [256, 14]] },
      { name: "floor", color: "#080", dashed: true, points: [[16, 0.1], [256, 0.8]] },
      { name: "empty", color: "#00c", points: [] },
    ],
  });
  assert(svg.startsWith("<svg ") && svg.trimEnd().endsWith("</svg>"));
  assertStringIncludes(svg, "downtime &lt;vs&gt; floor &amp; total");
  assertEquals(svg.match(/<polyline /g)?.length, 2);
  assertEquals(svg.match(/<circle /g)?.length, 5);
  assertStringIncludes(svg, `stroke-dasharray="6 4"`);
  // x axis 0..1500 (step 500) over 446 px from x=64: the 1024 MiB point is at 64 + 1024/1500*446
  const x1024 = (64 + (1024 / 1500) * 446).toFixed(6).replace(/\.?0+$/, "");
  assertStringIncludes(svg, `${x1024},`);
  assertEquals(escapeXml(`"a"&<b>`), "&quot;a&quot;&amp;&lt;b&gt;");
});
