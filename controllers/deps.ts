/** What every lpm reconciler is built from. @module */
import * as k8s from "@kubernetes/client-node";
import "../kube/http1.ts";
import { LpmClient } from "../kube/lpm_client.ts";
import type { AgentConnector } from "../contract/agent.ts";
import { EventRecorder } from "./runtime/events.ts";
import type { ControllerMetrics } from "./runtime/metrics.ts";
import { makeApiClient } from "../kube/api_requests.ts";

/** Shared dependencies of the reconcilers. */
export interface ReconcilerDeps {
  /** Cluster access. */
  kc: k8s.KubeConfig;
  /** lpm custom resources. */
  lpm: LpmClient;
  /** Core API (pods, nodes, secrets). */
  core: k8s.CoreV1Api;
  /** Node agents. */
  agents: AgentConnector;
  /** Event recorder. */
  events: EventRecorder;
  /** Metrics. */
  metrics?: ControllerMetrics;
  /** Clock (tests). */
  now: () => Date;
  /** How often a running agent operation is polled. */
  pollMs: number;
}

/** Builds the dependencies from a KubeConfig and an agent connector. */
export function newReconcilerDeps(
  kc: k8s.KubeConfig,
  agents: AgentConnector,
  opts: { metrics?: ControllerMetrics; pollMs?: number; component?: string } = {},
): ReconcilerDeps {
  return {
    kc,
    lpm: new LpmClient(kc),
    core: makeApiClient(kc, k8s.CoreV1Api),
    agents,
    events: new EventRecorder(kc, opts.component ?? "lpm-controller"),
    metrics: opts.metrics,
    now: () => new Date(),
    pollMs: opts.pollMs ?? 1000,
  };
}
