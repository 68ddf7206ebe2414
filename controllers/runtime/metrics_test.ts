import { assertEquals, assertStringIncludes, assertThrows } from "@std/assert";
import { Counter, Gauge, Histogram, MetricsRegistry, recordProcessMemory } from "./metrics.ts";

Deno.test("metrics render in the Prometheus text format with labels and buckets", () => {
  const reg = new MetricsRegistry();
  const c = reg.register(new Counter("lpm_test_total", "Test counter."));
  const h = reg.register(new Histogram("lpm_test_seconds", "Test histogram.", [0.1, 1]));
  c.inc({ controller: "pm", result: "success" });
  c.inc({ controller: "pm", result: "success" });
  h.observe({ controller: "pm" }, 0.5);
  h.observe({ controller: "pm" }, 3);
  const text = reg.render();
  assertStringIncludes(
    text,
    '# TYPE lpm_test_total counter\nlpm_test_total{controller="pm",result="success"} 2',
  );
  assertStringIncludes(text, 'lpm_test_seconds_bucket{controller="pm",le="0.1"} 0');
  assertStringIncludes(text, 'lpm_test_seconds_bucket{controller="pm",le="1"} 1');
  assertStringIncludes(text, 'lpm_test_seconds_bucket{controller="pm",le="+Inf"} 2');
  assertStringIncludes(text, 'lpm_test_seconds_sum{controller="pm"} 3.5');
  assertEquals(c.get({ result: "success", controller: "pm" }), 2, "label order does not matter");
  assertThrows(
    () => reg.register(new Counter("lpm_test_total", "again")),
    Error,
    "registered twice",
  );
});

Deno.test("label values are escaped", () => {
  const c = new Counter("x_total", "x");
  c.inc({ msg: 'a "quoted"\nline' });
  assertStringIncludes(c.render(), 'x_total{msg="a \\"quoted\\"\\nline"} 1');
});

Deno.test("recordProcessMemory: this process's RSS and heap, by kind", () => {
  const g = new Gauge("lpm_process_memory_bytes", "Memory.");
  recordProcessMemory(g);
  const text = g.render();
  const value = (kind: string) =>
    Number(new RegExp(`\\{kind="${kind}"\\} (\\d+)`).exec(text)?.[1] ?? NaN);
  const rss = Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync("/proc/self/status"))![1]) * 1024;
  // Read the same moment twice: RSS within 16 MiB of the kernel's figure; heap used <= total.
  if (Math.abs(value("rss") - rss) > 16 * 2 ** 20) throw new Error(`rss ${value("rss")} vs ${rss}`);
  if (!(value("heap_used") > 0 && value("heap_used") <= value("heap_total"))) {
    throw new Error(text);
  }
  assertEquals(Number.isFinite(value("external")), true);
});
