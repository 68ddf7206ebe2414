/** The manager's HTTP endpoints: /metrics, /healthz, /readyz. @module */
import type { MetricsRegistry } from "./metrics.ts";

/** A running endpoint server. */
export interface HealthServer {
  /** The port it listens on. */
  port: number;
  /** Stops it. */
  shutdown(): Promise<void>;
}

/**
 * Serves Prometheus metrics and the probes on `hostname:port` (port 0 picks
 * one). `ready()` decides /readyz; /healthz answers while the process runs.
 */
export function serveHealth(
  registry: MetricsRegistry,
  opts: { hostname?: string; port?: number; ready: () => boolean },
): HealthServer {
  const server = Deno.serve(
    { hostname: opts.hostname ?? "127.0.0.1", port: opts.port ?? 0, onListen: () => {} },
    (req) => {
      const path = new URL(req.url).pathname;
      if (path === "/metrics") {
        return new Response(registry.render(), {
          headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
        });
      }
      if (path === "/healthz") return new Response("ok\n");
      if (path === "/readyz") {
        return opts.ready() ? new Response("ok\n") : new Response("not ready\n", { status: 503 });
      }
      return new Response("not found\n", { status: 404 });
    },
  );
  return { port: (server.addr as Deno.NetAddr).port, shutdown: () => server.shutdown() };
}
