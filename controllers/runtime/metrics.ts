/**
 * Prometheus metrics in the text exposition format: counters, gauges and
 * histograms with labels, rendered by a registry.
 *
 * Why not prom-client (kept by decision): lpm needs three metric types with
 * labels and the text format, ~190 lines here. prom-client would add an npm
 * dependency tree (prom-client 15 pulls in @opentelemetry/api and tdigest,
 * which pulls in bintrees) to the controller and its default
 * collectors read Node's process and event-loop internals (`process`
 * handles, `perf_hooks` event-loop monitoring) that Deno's Node layer
 * implements partly; we would turn those off and use the same three types.
 * Summaries, exemplars, OpenMetrics or push would change that: then take
 * prom-client rather than grow this file.
 * @module
 */

type Labels = Record<string, string>;

function labelKey(labels: Labels): string {
  return Object.keys(labels).sort().map((k) => `${k}="${escapeLabel(labels[k])}"`).join(",");
}

function escapeLabel(v: string): string {
  return v.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
}

function fmt(name: string, key: string, value: number): string {
  return `${name}${key ? `{${key}}` : ""} ${
    Number.isFinite(value) ? value : value > 0 ? "+Inf" : "-Inf"
  }`;
}

interface Metric {
  readonly name: string;
  render(): string;
}

/** A monotonically increasing counter. */
export class Counter implements Metric {
  #values = new Map<string, number>();
  /** Creates a counter; register it with a {@linkcode MetricsRegistry}. */
  constructor(readonly name: string, readonly help: string) {}
  /** Adds `n` (default 1) to the series with `labels`. */
  inc(labels: Labels = {}, n = 1): void {
    const k = labelKey(labels);
    this.#values.set(k, (this.#values.get(k) ?? 0) + n);
  }
  /** Current value of the series with `labels`. */
  get(labels: Labels = {}): number {
    return this.#values.get(labelKey(labels)) ?? 0;
  }
  /** Text exposition. */
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const [k, v] of this.#values) lines.push(fmt(this.name, k, v));
    return lines.join("\n");
  }
}

/** A value that goes up and down. */
export class Gauge implements Metric {
  #values = new Map<string, number>();
  /** Creates a gauge; register it with a {@linkcode MetricsRegistry}. */
  constructor(readonly name: string, readonly help: string) {}
  /** Sets the series with `labels` to `v`. */
  set(labels: Labels, v: number): void {
    this.#values.set(labelKey(labels), v);
  }
  /** Current value of the series with `labels`. */
  get(labels: Labels = {}): number {
    return this.#values.get(labelKey(labels)) ?? 0;
  }
  /** Removes every series (before a full recount). */
  reset(): void {
    this.#values.clear();
  }
  /** Text exposition. */
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    for (const [k, v] of this.#values) lines.push(fmt(this.name, k, v));
    return lines.join("\n");
  }
}

/** A histogram with fixed upper bounds (seconds, by convention). */
export class Histogram implements Metric {
  #series = new Map<string, { counts: number[]; sum: number; count: number }>();
  /** Creates a histogram with sorted bucket upper bounds. */
  constructor(readonly name: string, readonly help: string, readonly buckets: number[]) {}
  /** Records one observation. */
  observe(labels: Labels, v: number): void {
    const k = labelKey(labels);
    let s = this.#series.get(k);
    if (!s) {
      s = { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.#series.set(k, s);
    }
    this.buckets.forEach((b, i) => {
      if (v <= b) s.counts[i]++;
    });
    s.sum += v;
    s.count++;
  }
  /** Number of observations of the series with `labels`. */
  count(labels: Labels = {}): number {
    return this.#series.get(labelKey(labels))?.count ?? 0;
  }
  /** Text exposition. */
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [k, s] of this.#series) {
      const sep = k ? "," : "";
      this.buckets.forEach((b, i) =>
        lines.push(`${this.name}_bucket{${k}${sep}le="${b}"} ${s.counts[i]}`)
      );
      lines.push(`${this.name}_bucket{${k}${sep}le="+Inf"} ${s.count}`);
      lines.push(fmt(`${this.name}_sum`, k, s.sum));
      lines.push(fmt(`${this.name}_count`, k, s.count));
    }
    return lines.join("\n");
  }
}

/** A set of metrics rendered together. */
export class MetricsRegistry {
  #metrics = new Map<string, Metric>();
  /** Adds `m` (names must be unique) and returns it. */
  register<M extends Metric>(m: M): M {
    if (this.#metrics.has(m.name)) throw new Error(`Metric "${m.name}" is registered twice`);
    this.#metrics.set(m.name, m);
    return m;
  }
  /** The whole registry in the Prometheus text format. */
  render(): string {
    return [...this.#metrics.values()].map((m) => m.render()).join("\n") + "\n";
  }
}

/** The controller metrics every lpm controller manager exports. */
export interface ControllerMetrics {
  /** The registry holding them. */
  registry: MetricsRegistry;
  /** Reconciles by controller and result (success, error, requeue). */
  reconcileTotal: Counter;
  /** Reconcile errors by controller. */
  reconcileErrors: Counter;
  /** Reconcile durations by controller. */
  reconcileDuration: Histogram;
  /** Keys waiting in each controller's queue. */
  queueDepth: Gauge;
  /** PodMigrations by phase. */
  migrationsByPhase: Gauge;
  /** The migration limits in force, by limit (parallel, outbound_per_node). */
  migrationLimit: Gauge;
  /** Whole-migration durations by result. */
  migrationDuration: Histogram;
  /** Measured downtime of migrations (source frozen until target running). */
  migrationDowntime: Histogram;
  /** Requests to the API server by verb and resource (kube/api_requests.ts). */
  apiRequests: Counter;
  /** Bytes of container checkpoint archives stored, by storage class: what migrations move. */
  checkpointBytes: Counter;
  /** Failed PodMigrations by the reason of their Succeeded=False condition. */
  migrationFailures: Counter;
  /** This process's memory by kind: rss, heap_total, heap_used, external (Deno.memoryUsage). */
  processMemory: Gauge;
}

/** Sets `g` from `Deno.memoryUsage()`: what a soak tells a leak (heap_used) from RSS kept by the runtime. */
export function recordProcessMemory(g: Gauge): void {
  const m = Deno.memoryUsage();
  g.set({ kind: "rss" }, m.rss);
  g.set({ kind: "heap_total" }, m.heapTotal);
  g.set({ kind: "heap_used" }, m.heapUsed);
  g.set({ kind: "external" }, m.external);
}

/** Creates the standard controller metrics in a new registry. */
export function newControllerMetrics(): ControllerMetrics {
  const registry = new MetricsRegistry();
  const secs = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
  const long = [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600];
  return {
    registry,
    reconcileTotal: registry.register(
      new Counter("lpm_controller_reconcile_total", "Reconciles by controller and result."),
    ),
    reconcileErrors: registry.register(
      new Counter("lpm_controller_reconcile_errors_total", "Reconcile errors by controller."),
    ),
    reconcileDuration: registry.register(
      new Histogram("lpm_controller_reconcile_time_seconds", "Reconcile durations.", secs),
    ),
    queueDepth: registry.register(
      new Gauge("lpm_workqueue_depth", "Keys waiting per controller queue."),
    ),
    migrationsByPhase: registry.register(new Gauge("lpm_podmigrations", "PodMigrations by phase.")),
    migrationLimit: registry.register(
      new Gauge("lpm_podmigration_limit", "Migration limits in force, by limit."),
    ),
    processMemory: registry.register(
      new Gauge("lpm_process_memory_bytes", "This process's memory by kind (rss, heap_*)."),
    ),
    migrationDuration: registry.register(
      new Histogram(
        "lpm_podmigration_duration_seconds",
        "Whole migration durations by result.",
        long,
      ),
    ),
    migrationDowntime: registry.register(
      new Histogram(
        "lpm_podmigration_downtime_seconds",
        "Source frozen until target running.",
        long,
      ),
    ),
    apiRequests: registry.register(
      new Counter("lpm_api_requests_total", "Requests to the API server by verb and resource."),
    ),
    checkpointBytes: registry.register(
      new Counter(
        "lpm_checkpoint_bytes_total",
        "Bytes of container checkpoint archives stored, by storage class.",
      ),
    ),
    migrationFailures: registry.register(
      new Counter("lpm_podmigration_failures_total", "Failed PodMigrations by reason."),
    ),
  };
}
