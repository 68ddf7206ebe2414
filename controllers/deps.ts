/** What every lpm reconciler is built from. @module */
import * as k8s from "@kubernetes/client-node";
import "../kube/http1.ts";
import { LpmClient } from "../kube/lpm_client.ts";
import type { AgentConnector } from "../contract/agent.ts";
import { EventRecorder } from "./runtime/events.ts";
import type { ControllerMetrics } from "./runtime/metrics.ts";
import { makeApiClient } from "../kube/api_requests.ts";
import { apiCache, type Cache, type CacheInformers, InformerCache } from "./cache.ts";
import { type MigrationLimits, MigrationSlots } from "./migration_limits.ts";

/** Shared dependencies of the reconcilers. */
export interface ReconcilerDeps {
  /** Cluster access. */
  kc: k8s.KubeConfig;
  /** lpm custom resources: writes (and reads that must be fresh: see cache.ts). */
  lpm: LpmClient;
  /** Core API (pods, nodes, secrets): writes, and reads of what is not cached (secrets). */
  core: k8s.CoreV1Api;
  /** Reads of lpm objects, pods and nodes: the informers' caches (cache.ts). */
  cache: Cache;
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
  /** Slots under the migration limits (migration_limits.ts). */
  slots: MigrationSlots;
}

/** Builds the dependencies from a KubeConfig and an agent connector. */
export function newReconcilerDeps(
  kc: k8s.KubeConfig,
  agents: AgentConnector,
  opts: {
    metrics?: ControllerMetrics;
    pollMs?: number;
    component?: string;
    /** Migration limits; KubeVirt's defaults when unset. */
    limits?: MigrationLimits;
    /** Started informers to read from; without them every read is a request. */
    informers?: CacheInformers;
  } = {},
): ReconcilerDeps {
  let cache: InformerCache | undefined;
  const lpm = new LpmClient(kc, { onWrite: (plural, o) => cache?.observe(plural, o) });
  const core = makeApiClient(kc, k8s.CoreV1Api);
  if (opts.informers) cache = new InformerCache(opts.informers, { lpm, core });
  return {
    kc,
    lpm,
    core,
    cache: cache ?? apiCache({ lpm, core }),
    agents,
    events: new EventRecorder(kc, opts.component ?? "lpm-controller"),
    metrics: opts.metrics,
    now: () => new Date(),
    pollMs: opts.pollMs ?? 1000,
    slots: new MigrationSlots(opts.limits),
  };
}
