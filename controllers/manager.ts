/**
 * The controller manager: shared informers for lpm's kinds and the pods of
 * migrations, one controller per kind, leader election on a Lease, and the
 * /metrics, /healthz, /readyz endpoints. Informer events only enqueue keys
 * (of the object, or of its owner); reconcilers do the work.
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import type { AgentConnector } from "../contract/agent.ts";
import { newReconcilerDeps, type ReconcilerDeps } from "./deps.ts";
import type { LpmPlural } from "../kube/lpm_client.ts";
import { Controller, keyOf, type Reconcile } from "./runtime/controller.ts";
import { Informer, type KubeObject } from "./runtime/informer.ts";
import { LeaderElector } from "./runtime/leader_election.ts";
import { Logger } from "../base/log.ts";
import {
  type ControllerMetrics,
  newControllerMetrics,
  recordProcessMemory,
} from "./runtime/metrics.ts";
import { type HealthServer, serveHealth } from "./runtime/health_server.ts";
import { containerCheckpointReconciler } from "./container_checkpoint.ts";
import { podCheckpointReconciler } from "./pod_checkpoint.ts";
import { podMigrationReconciler } from "./pod_migration.ts";
import { storageClassReconciler } from "./storage_class.ts";
import { checkpointRetentionReconciler } from "./checkpoint_retention.ts";
import { podRestoreReconciler } from "./pod_restore.ts";
import { MIGRATION_LABEL } from "./restored_pod.ts";
import { onApiRequest } from "../kube/api_requests.ts";
import {
  DEFAULT_MIGRATION_LIMITS,
  freesSlot,
  type MigrationLimits,
  toWake,
  type WaitingMigration,
} from "./migration_limits.ts";
import { type EvictionWebhookOptions, startEvictionWebhook } from "./eviction_webhook.ts";
import type { KubeAccess } from "../kube/kubeconfig.ts";
import { type KubeHttp, kubeHttp } from "../kube/http.ts";

/** Options for {@linkcode startManager}. */
export interface ManagerOptions {
  /** Cluster access. */
  kubeConfig: KubeAccess;
  /** How to reach node agents. */
  agents: AgentConnector;
  /** Lease for leader election; omit to run without election (one replica, tests). */
  leaderElection?: { namespace: string; name?: string; identity?: string };
  /** Port for /metrics, /healthz, /readyz (0 = any; undefined = no server). */
  healthPort?: number;
  /** Host for the health server. Default 127.0.0.1. */
  healthHost?: string;
  /** Agent operation poll period. Default 1000 ms. */
  pollMs?: number;
  /** Storage class validation period. Default 60 s. */
  validationPeriodMs?: number;
  /** Period of each class's retention pass (it also runs after each new checkpoint). Default 10 min. */
  retentionPeriodMs?: number;
  /** Migrations running at once, in the cluster and per source node. Default 5 and 2. */
  migrationLimits?: MigrationLimits;
  /** Serve the `pods/eviction` webhook (eviction_webhook.ts); off when unset. */
  evictionWebhook?: EvictionWebhookOptions;
  /** Workers per controller. Default 2. */
  workers?: number;
  /** Logger. */
  logger?: Logger;
  /** Override the dependencies (tests: a clock). */
  deps?: Partial<ReconcilerDeps>;
}

/** A running manager. */
export interface Manager {
  /** Metrics of all controllers. */
  metrics: ControllerMetrics;
  /** The health server's port, when one runs. */
  healthPort?: number;
  /** The eviction webhook's port, when it runs. */
  webhookPort?: number;
  /** Resolves when this replica leads (at once without election). */
  leading: Promise<void>;
  /** Stops controllers, informers, election and the server. */
  stop(): Promise<void>;
}

/** The shared informers: lpm's kinds, every pod and every node. */
interface ManagerInformers {
  /** Their shared connection pool. */
  http: KubeHttp;
  pm: Informer<KubeObject>;
  pc: Informer<KubeObject>;
  cc: Informer<KubeObject>;
  csc: Informer<KubeObject>;
  pr: Informer<KubeObject>;
  pods: Informer<k8s.V1Pod>;
  nodes: Informer<k8s.V1Node>;
}

/** One controller per kind, and retention (one key per storage class). */
interface ManagerControllers {
  pm: Controller;
  pc: Controller;
  cc: Controller;
  csc: Controller;
  retention: Controller;
  pr: Controller;
}

/** Starts the manager; controllers run once this replica leads. */
export async function startManager(opts: ManagerOptions): Promise<Manager> {
  const log = opts.logger ?? new Logger({ component: "lpm-controller" });
  const metrics = newControllerMetrics();
  const stopCounting = onApiRequest((r) => metrics.apiRequests.inc({ ...r }));
  const informers = newInformers(opts.kubeConfig, log);
  const deps = reconcilerDeps(opts, metrics, informers);
  const controllers = newControllers(opts, deps, metrics, log);
  watchPodMigrations(informers, controllers);
  watchPodCheckpoints(informers, controllers);
  watchContainerCheckpoints(informers, controllers);
  watchStorageClasses(informers, controllers);
  informers.pr.onChange((o) => controllers.pr.enqueue(keyOf(o)));
  const run = newRunState(informers, controllers, log);
  const health: HealthServer | undefined = opts.healthPort !== undefined
    ? serveHealth(metrics.registry, {
      hostname: opts.healthHost,
      port: opts.healthPort,
      ready: () => run.ready,
    })
    : undefined;
  const gaugeTimer = countMigrationsByPhase(metrics, informers.pm);
  const { elector, leading } = lead(opts, log, run);
  // Without election, start now so that errors (CRDs missing, RBAC) reach the caller.
  if (!elector) await leading;
  // A standby answers too (its cache falls back to reads), though its
  // Service endpoint is not Ready and gets no reviews.
  const webhook = opts.evictionWebhook
    ? await startEvictionWebhook(deps, opts.evictionWebhook, log)
    : undefined;
  return {
    metrics,
    healthPort: health?.port,
    webhookPort: webhook?.port,
    leading,
    async stop() {
      await webhook?.stop();
      clearInterval(gaugeTimer);
      stopCounting();
      await elector?.stop();
      await run.stop();
      informers.http.close();
      await health?.shutdown();
      opts.agents.close?.();
    },
  };
}

/**
 * Every pod and node, not only the migrations' pods: reconcilers read source
 * pods and nodes from here (cache.ts), as controller-runtime's cached client does.
 */
function newInformers(kc: KubeAccess, log: Logger): ManagerInformers {
  // One connection pool for every watch (and for a restart after a lost lease).
  const http = kubeHttp(kc);
  const onError = (what: string) => ({
    http,
    onError: (err: unknown) =>
      log.warn("watch error; restarting", { informer: what, err: String(err) }),
  });
  const crInformer = (plural: LpmPlural) =>
    new Informer<KubeObject>(kc, `/apis/lpm.my.domain/v1/${plural}`, onError(plural));
  return {
    http,
    pm: crInformer("podmigrations"),
    pc: crInformer("podcheckpoints"),
    cc: crInformer("containercheckpoints"),
    csc: crInformer("checkpointstorageclasses"),
    pr: crInformer("podrestores"),
    pods: new Informer<k8s.V1Pod>(kc, "/api/v1/pods", onError("pods")),
    nodes: new Informer<k8s.V1Node>(kc, "/api/v1/nodes", onError("nodes")),
  };
}

/** The reconcilers' dependencies, reading from the informers (and `opts.deps` over them). */
function reconcilerDeps(
  opts: ManagerOptions,
  metrics: ControllerMetrics,
  informers: ManagerInformers,
): ReconcilerDeps {
  const limits = opts.migrationLimits ?? DEFAULT_MIGRATION_LIMITS;
  metrics.migrationLimit.set({ limit: "parallel" }, limits.maxParallel);
  metrics.migrationLimit.set({ limit: "outbound_per_node" }, limits.maxOutboundPerNode);
  return {
    ...newReconcilerDeps(opts.kubeConfig, opts.agents, {
      metrics,
      pollMs: opts.pollMs,
      limits,
      informers: {
        lpm: {
          podmigrations: informers.pm,
          podcheckpoints: informers.pc,
          containercheckpoints: informers.cc,
          checkpointstorageclasses: informers.csc,
          podrestores: informers.pr,
        },
        pods: informers.pods,
        nodes: informers.nodes,
      },
    }),
    ...opts.deps,
  };
}

/** The controllers (not started). */
function newControllers(
  opts: ManagerOptions,
  deps: ReconcilerDeps,
  metrics: ControllerMetrics,
  log: Logger,
): ManagerControllers {
  const common = { metrics, logger: log, workers: opts.workers ?? 2 };
  const controller = (name: string, reconcile: Reconcile, workers = common.workers) =>
    new Controller({ name, reconcile, ...common, workers });
  return {
    pm: controller("podmigration", podMigrationReconciler(deps)),
    pc: controller("podcheckpoint", podCheckpointReconciler(deps)),
    cc: controller("containercheckpoint", containerCheckpointReconciler(deps)),
    csc: controller(
      "checkpointstorageclass",
      storageClassReconciler(deps, { validationPeriodMs: opts.validationPeriodMs }),
    ),
    retention: controller(
      "checkpointretention",
      checkpointRetentionReconciler(deps, { periodMs: opts.retentionPeriodMs }),
      1,
    ),
    pr: controller("podrestore", podRestoreReconciler(deps)),
  };
}

/** The key of `o`'s controlling owner of `kind`, if it has one. */
function ownerKey(o: KubeObject, kind: string): string | undefined {
  const ref = o.metadata?.ownerReferences?.find((r) => r.controller && r.kind === kind);
  return ref ? `${o.metadata?.namespace}/${ref.name}` : undefined;
}

/**
 * A PodMigration wakes on itself and on its pods (source and restored, by
 * label). One that ends (or goes) while it holds a slot under the limits
 * wakes the oldest waiter of each source node (migration_limits.ts): waiters
 * are not polled (they look again after a minute only in case a wake-up was
 * lost).
 */
function watchPodMigrations(informers: ManagerInformers, controllers: ManagerControllers): void {
  const phases = new Map<string, string | undefined>();
  informers.pm.onChange((o, ev) => {
    const k = keyOf(o);
    controllers.pm.enqueue(k);
    const was = phases.get(k);
    const now = ev === "delete" ? undefined : (o as MigrationView).status?.phase;
    if (ev === "delete") phases.delete(k);
    else phases.set(k, now);
    if (!freesSlot(was, now)) return;
    for (const w of toWake(waitingForSlot(informers.pm.list()))) controllers.pm.enqueue(w);
  });
  informers.pods.onChange((p) => {
    const m = p.metadata?.labels?.[MIGRATION_LABEL];
    if (m) controllers.pm.enqueue(`${p.metadata?.namespace}/${m}`);
  });
}

/** What the wake-up reads of a PodMigration. */
type MigrationView = KubeObject & {
  status?: {
    phase?: string;
    sourceNode?: string;
    conditions?: { type: string; status: string }[];
  };
};

/** Migrations Pending with Admitted=False: they wait for a slot. */
function waitingForSlot(all: readonly KubeObject[]): WaitingMigration[] {
  return (all as readonly MigrationView[]).filter((m) =>
    (m.status?.phase ?? "Pending") === "Pending" &&
    m.status?.conditions?.some((c) => c.type === "Admitted" && c.status === "False")
  ).map((m) => ({
    key: keyOf(m),
    node: m.status?.sourceNode ?? "",
    created: m.metadata?.creationTimestamp
      ? new Date(m.metadata.creationTimestamp).toISOString()
      : "",
  }));
}

/**
 * A PodCheckpoint wakes itself and its PodMigration, and once it succeeds its
 * class's retention: a node class counts its checkpoints by their
 * PodCheckpoints, which succeed after their ContainerCheckpoints.
 */
function watchPodCheckpoints(informers: ManagerInformers, controllers: ManagerControllers): void {
  informers.pc.onChange((o) => {
    controllers.pc.enqueue(keyOf(o));
    const pm = ownerKey(o, "PodMigration");
    if (pm) controllers.pm.enqueue(pm);
    const pc = o as { spec?: { storageClassName?: string }; status?: { phase?: string } };
    if (pc.status?.phase !== "Succeeded") return;
    const classes = pc.spec?.storageClassName ? [pc.spec.storageClassName] : informers.csc.list()
      .filter((c) => (c as { spec?: { default?: boolean } }).spec?.default)
      .map((c) => c.metadata!.name!);
    for (const c of classes) wakeRetention(controllers, c);
  });
}

/**
 * How long a new checkpoint's retention pass waits, so that the checkpoints
 * that succeed meanwhile share it (the queue keeps the earliest pending
 * wake): one pass lists every lpm object of the cluster, and under load each
 * checkpoint woke one (a ContainerCheckpoint's success and then its
 * PodCheckpoint's: two per migration).
 */
export const RETENTION_WAKE_DELAY_MS = 3000;

/** Wakes `cls`'s retention pass after {@linkcode RETENTION_WAKE_DELAY_MS}. */
function wakeRetention(controllers: ManagerControllers, cls: string): void {
  controllers.retention.queue.addAfter(cls, RETENTION_WAKE_DELAY_MS);
}

/** A ContainerCheckpoint wakes itself, its PodCheckpoint, and its class's retention once it succeeds. */
function watchContainerCheckpoints(
  informers: ManagerInformers,
  controllers: ManagerControllers,
): void {
  informers.cc.onChange((o) => {
    controllers.cc.enqueue(keyOf(o));
    const pc = ownerKey(o, "PodCheckpoint");
    if (pc) controllers.pc.enqueue(pc);
    // A new checkpoint may push an old one out of its class's retention.
    const st = (o as { status?: { phase?: string; archive?: { storageClassName?: string } } })
      .status;
    if (st?.phase === "Succeeded" && st.archive?.storageClassName) {
      wakeRetention(controllers, st.archive.storageClassName);
    }
  });
}

/**
 * A class wakes its own controller on every change. Retention runs on its
 * period and on a new checkpoint; of a class's own changes, only a new spec
 * moves it (its status patches would wake it again and again: 6 passes a
 * second, ~50 requests, with nothing to do).
 */
function watchStorageClasses(informers: ManagerInformers, controllers: ManagerControllers): void {
  const classGenerations = new Map<string, number | undefined>();
  informers.csc.onChange((o, ev) => {
    controllers.csc.enqueue(keyOf(o));
    const k = keyOf(o);
    if (ev === "delete") classGenerations.delete(k);
    else if (!classGenerations.has(k) || classGenerations.get(k) !== o.metadata?.generation) {
      classGenerations.set(k, o.metadata?.generation);
      controllers.retention.enqueue(k);
    }
  });
}

/** Starts and stops informers and controllers together (on leading, on losing the lead). */
interface RunState {
  /** True while informers are synced and controllers run (/readyz). */
  readonly ready: boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
}

function newRunState(
  informers: ManagerInformers,
  controllers: ManagerControllers,
  log: Logger,
): RunState {
  let running = false;
  let ready = false;
  return {
    get ready() {
      return ready;
    },
    async start() {
      if (running) return;
      running = true;
      for (const [name, inf] of informerList(informers)) await startInformer(name, inf);
      for (const c of Object.values(controllers)) c.start();
      ready = true;
      log.info("controllers started");
    },
    async stop() {
      ready = false;
      if (!running) return;
      running = false;
      await Promise.all(informerList(informers).map(([, i]) => i.stop()));
      await Promise.all(Object.values(controllers).map((c) => c.stop()));
    },
  };
}

/** The informers by name (without their shared client). */
function informerList(informers: ManagerInformers): [string, Informer<KubeObject>][] {
  const { http: _http, ...all } = informers;
  return Object.entries(all) as [string, Informer<KubeObject>][];
}

/** Starts (lists) one informer; a failure says what is likely missing. */
async function startInformer(name: string, inf: Informer<KubeObject>): Promise<void> {
  try {
    await inf.start();
  } catch (err) {
    throw new Error(
      `Cannot list ${name === "pods" || name === "nodes" ? name : `lpm resources (${inf.path})`}: ${
        String(err).split("\n")[0]
      }` +
        " (are the CRDs in crds/ installed, and does the controller's ServiceAccount have RBAC for them?)",
    );
  }
}

/** Recounts migrations by phase for the gauge, from the informer cache, every 5 s. */
function countMigrationsByPhase(
  metrics: ControllerMetrics,
  pm: Informer<KubeObject>,
): ReturnType<typeof setInterval> {
  return setInterval(() => {
    metrics.migrationsByPhase.reset();
    const counts: Record<string, number> = {};
    for (const o of pm.list()) {
      const p = (o as { status?: { phase?: string } }).status?.phase ?? "Pending";
      counts[p] = (counts[p] ?? 0) + 1;
    }
    for (const [phase, n] of Object.entries(counts)) metrics.migrationsByPhase.set({ phase }, n);
    recordProcessMemory(metrics.processMemory);
  }, 5000);
}

/** Runs the controllers while this replica leads the Lease (at once without election). */
function lead(
  opts: ManagerOptions,
  log: Logger,
  run: RunState,
): { elector?: LeaderElector; leading: Promise<void> } {
  if (!opts.leaderElection) return { leading: run.start() };
  const elector = new LeaderElector(opts.kubeConfig, {
    namespace: opts.leaderElection.namespace,
    name: opts.leaderElection.name ?? "lpm-controller",
    identity: opts.leaderElection.identity ??
      `${Deno.hostname()}-${crypto.randomUUID().slice(0, 8)}`,
    logger: log,
  });
  const leading = new Promise<void>((resolve, reject) => {
    elector.run({
      onStartedLeading: () => run.start().then(resolve, reject),
      // Another replica may already act: stop at once.
      onStoppedLeading: () => void run.stop(),
    });
  });
  return { elector, leading };
}
