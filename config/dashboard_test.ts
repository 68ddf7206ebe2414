/**
 * The Grafana dashboard (config/dashboards/lpm.json) queries only metrics
 * the controller really exports: the names are read from the metric
 * constructors in controllers/ (`new Counter("lpm_...")`, Gauge,
 * Histogram), not from a list kept by hand.
 */
import { assert, assertEquals } from "@std/assert";

const ROOT = new URL("../", import.meta.url).pathname;

async function exportedMetrics(): Promise<Set<string>> {
  const names = new Set<string>();
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) {
        const text = await Deno.readTextFile(p);
        for (
          const m of text.matchAll(/new (Counter|Gauge|Histogram)\(\s*"([a-z_:][a-z0-9_:]*)"/g)
        ) {
          names.add(m[2]);
          // A histogram is queried through its series.
          if (m[1] === "Histogram") {
            for (const s of ["_bucket", "_sum", "_count"]) names.add(m[2] + s);
          }
        }
      }
    }
  };
  await walk(`${ROOT}controllers`);
  return names;
}

Deno.test("dashboard: every query names a metric the controller exports", async () => {
  const exported = await exportedMetrics();
  assert(exported.has("lpm_podmigration_downtime_seconds"), "found the controller's metrics");
  const dash = JSON.parse(await Deno.readTextFile(`${ROOT}config/dashboards/lpm.json`));
  const unknown: string[] = [];
  let queries = 0;
  for (const panel of dash.panels) {
    for (const t of panel.targets ?? []) {
      queries++;
      const metrics = [...String(t.expr).matchAll(/\b(lpm_[a-z0-9_]+)/g)].map((m) => m[1]);
      assert(metrics.length > 0, `panel "${panel.title}" query names no lpm metric: ${t.expr}`);
      for (const m of metrics) if (!exported.has(m)) unknown.push(`${panel.title}: ${m}`);
    }
  }
  assert(queries >= 6, `only ${queries} queries`);
  assertEquals(unknown, []);
});
