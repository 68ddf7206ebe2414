/** What every lpm reconciler is built from. @module */
import { LpmClient } from "../kube/lpm_client.ts";
import type { AgentConnector } from "../contract/agent.ts";
import { EventRecorder, type EventTarget } from "./runtime/events.ts";
import { MIGRATION_LABEL } from "./restored_pod.ts";
import type { ControllerMetrics } from "./runtime/metrics.ts";
import { CoreClient } from "../kube/core_client.ts";
import { KubeRest } from "../kube/rest.ts";
import type { KubeAccess } from "../kube/kubeconfig.ts";
import { apiCache, type Cache, type CacheInformers, InformerCache } from "./cache.ts";
import { type MigrationLimits, MigrationSlots } from "./migration_limits.ts";

/** Shared dependencies of the reconcilers. */
export interface ReconcilerDeps {
  /** Cluster access. */
  kc: KubeAccess;
  /** lpm custom resources: writes (and reads that must be fresh: see cache.ts). */
  lpm: LpmClient;
  /** Core API (pods, nodes, secrets): writes, and reads of what is not cached (secrets). */
  core: CoreClient;
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

/**
 * A PodCheckpoint or ContainerCheckpoint a PodMigration made: its Normal
 * Events would repeat the migration's ("Froze source pod", phase changes),
 * at one API request each (issue 21's budget); its warnings still go out,
 * and `kubectl describe podmigration` tells the story.
 */
export function migrationPart(obj: EventTarget): boolean {
  return obj.kind !== "PodMigration" && !!obj.metadata?.labels?.[MIGRATION_LABEL];
}

/** Builds the dependencies from a kubeconfig and an agent connector. */
export function newReconcilerDeps(
  kc: KubeAccess,
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
  // One connection pool for every request of the reconcilers.
  const rest = new KubeRest(kc);
  const lpm = new LpmClient(rest, { onWrite: (plural, o) => cache?.observe(plural, o) });
  const core = new CoreClient(rest);
  if (opts.informers) cache = new InformerCache(opts.informers, { lpm, core });
  return {
    kc,
    lpm,
    core,
    cache: cache ?? apiCache({ lpm, core }),
    agents,
    events: new EventRecorder(rest, opts.component ?? "lpm-controller", undefined, {
      quiet: migrationPart,
    }),
    metrics: opts.metrics,
    now: () => new Date(),
    pollMs: opts.pollMs ?? 1000,
    slots: new MigrationSlots(opts.limits),
  };
}
