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
import { Controller, keyOf } from "./runtime/controller.ts";
import { Informer, type KubeObject } from "./runtime/informer.ts";
import { LeaderElector } from "./runtime/leader_election.ts";
import { Logger } from "../base/log.ts";
import { type ControllerMetrics, newControllerMetrics } from "./runtime/metrics.ts";
import { type HealthServer, serveHealth } from "./runtime/health_server.ts";
import { containerCheckpointReconciler } from "./container_checkpoint.ts";
import { podCheckpointReconciler } from "./pod_checkpoint.ts";
import { podMigrationReconciler } from "./pod_migration.ts";
import { storageClassReconciler } from "./storage_class.ts";
import { checkpointRetentionReconciler } from "./checkpoint_retention.ts";
import { podRestoreReconciler } from "./pod_restore.ts";
import { MIGRATION_LABEL } from "./restored_pod.ts";
import { onApiRequest } from "../kube/api_requests.ts";

/** Options for {@linkcode startManager}. */
export interface ManagerOptions {
  /** Cluster access. */
  kubeConfig: k8s.KubeConfig;
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
  /** Resolves when this replica leads (at once without election). */
  leading: Promise<void>;
  /** Stops controllers, informers, election and the server. */
  stop(): Promise<void>;
}

/** Starts the manager; controllers run once this replica leads. */
export async function startManager(opts: ManagerOptions): Promise<Manager> {
  const log = opts.logger ?? new Logger({ component: "lpm-controller" });
  const kc = opts.kubeConfig;
  const metrics = newControllerMetrics();
  const stopCounting = onApiRequest((r) => metrics.apiRequests.inc({ ...r }));
  const onError = (what: string) => (err: unknown) =>
    log.warn("watch error; restarting", { informer: what, err: String(err) });
  const crInformer = (plural: LpmPlural) =>
    new Informer<KubeObject>(kc, `/apis/lpm.my.domain/v1/${plural}`, { onError: onError(plural) });
  // Every pod and node, not only the migrations' pods: reconcilers read source
  // pods and nodes from here (cache.ts), as controller-runtime's cached client does.
  const informers = {
    pm: crInformer("podmigrations"),
    pc: crInformer("podcheckpoints"),
    cc: crInformer("containercheckpoints"),
    csc: crInformer("checkpointstorageclasses"),
    pr: crInformer("podrestores"),
    pods: new Informer<k8s.V1Pod>(kc, "/api/v1/pods", { onError: onError("pods") }),
    nodes: new Informer<k8s.V1Node>(kc, "/api/v1/nodes", { onError: onError("nodes") }),
  };
  const deps: ReconcilerDeps = {
    ...newReconcilerDeps(kc, opts.agents, {
      metrics,
      pollMs: opts.pollMs,
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
  const common = { metrics, logger: log, workers: opts.workers ?? 2 };
  const controllers = {
    pm: new Controller({
      name: "podmigration",
      reconcile: podMigrationReconciler(deps),
      ...common,
    }),
    pc: new Controller({
      name: "podcheckpoint",
      reconcile: podCheckpointReconciler(deps),
      ...common,
    }),
    cc: new Controller({
      name: "containercheckpoint",
      reconcile: containerCheckpointReconciler(deps),
      ...common,
    }),
    csc: new Controller({
      name: "checkpointstorageclass",
      reconcile: storageClassReconciler(deps, { validationPeriodMs: opts.validationPeriodMs }),
      ...common,
    }),
    retention: new Controller({
      name: "checkpointretention",
      reconcile: checkpointRetentionReconciler(deps, { periodMs: opts.retentionPeriodMs }),
      ...common,
      workers: 1,
    }),
    pr: new Controller({
      name: "podrestore",
      reconcile: podRestoreReconciler(deps),
      ...common,
    }),
  };
  const ownerKey = (o: KubeObject, kind: string) => {
    const ref = o.metadata?.ownerReferences?.find((r) => r.controller && r.kind === kind);
    return ref ? `${o.metadata?.namespace}/${ref.name}` : undefined;
  };
  informers.pm.onChange((o) => controllers.pm.enqueue(keyOf(o)));
  informers.pc.onChange((o) => {
    controllers.pc.enqueue(keyOf(o));
    const pm = ownerKey(o, "PodMigration");
    if (pm) controllers.pm.enqueue(pm);
  });
  informers.cc.onChange((o) => {
    controllers.cc.enqueue(keyOf(o));
    const pc = ownerKey(o, "PodCheckpoint");
    if (pc) controllers.pc.enqueue(pc);
    // A new checkpoint may push an old one out of its class's retention.
    const st = (o as { status?: { phase?: string; archive?: { storageClassName?: string } } })
      .status;
    if (st?.phase === "Succeeded" && st.archive?.storageClassName) {
      controllers.retention.enqueue(st.archive.storageClassName);
    }
  });
  // Retention runs on its period and on a new checkpoint; of a class's own
  // changes, only a new spec moves it (its status patches would wake it
  // again and again: 6 passes a second, ~50 requests, with nothing to do).
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
  informers.pr.onChange((o) => controllers.pr.enqueue(keyOf(o)));
  informers.pods.onChange((p) => {
    const m = p.metadata?.labels?.[MIGRATION_LABEL];
    if (m) controllers.pm.enqueue(`${p.metadata?.namespace}/${m}`);
  });

  let running = false;
  let ready = false;
  const startControllers = async () => {
    if (running) return;
    running = true;
    for (const [name, inf] of Object.entries(informers)) {
      try {
        await inf.start();
      } catch (err) {
        throw new Error(
          `Cannot list ${
            name === "pods" || name === "nodes" ? name : `lpm resources (${inf.path})`
          }: ${String(err).split("\n")[0]}` +
            " (are the CRDs in crds/ installed, and does the controller's ServiceAccount have RBAC for them?)",
        );
      }
    }
    for (const c of Object.values(controllers)) c.start();
    ready = true;
    log.info("controllers started");
  };
  const stopControllers = async () => {
    ready = false;
    if (!running) return;
    running = false;
    await Promise.all(Object.values(informers).map((i) => i.stop()));
    await Promise.all(Object.values(controllers).map((c) => c.stop()));
  };
  const health: HealthServer | undefined = opts.healthPort !== undefined
    ? serveHealth(metrics.registry, {
      hostname: opts.healthHost,
      port: opts.healthPort,
      ready: () => ready,
    })
    : undefined;

  // Recount migrations by phase for the gauge, from the informer cache.
  const gaugeTimer = setInterval(() => {
    metrics.migrationsByPhase.reset();
    const counts: Record<string, number> = {};
    for (const o of informers.pm.list()) {
      const p = (o as { status?: { phase?: string } }).status?.phase ?? "Pending";
      counts[p] = (counts[p] ?? 0) + 1;
    }
    for (const [phase, n] of Object.entries(counts)) metrics.migrationsByPhase.set({ phase }, n);
  }, 5000);

  let elector: LeaderElector | undefined;
  let leading: Promise<void>;
  if (opts.leaderElection) {
    elector = new LeaderElector(kc, {
      namespace: opts.leaderElection.namespace,
      name: opts.leaderElection.name ?? "lpm-controller",
      identity: opts.leaderElection.identity ??
        `${Deno.hostname()}-${crypto.randomUUID().slice(0, 8)}`,
      logger: log,
    });
    leading = new Promise((resolve, reject) => {
      elector!.run({
        onStartedLeading: () => startControllers().then(resolve, reject),
        // Another replica may already act: stop at once.
        onStoppedLeading: () => void stopControllers(),
      });
    });
  } else {
    // Without election, start now so that errors (CRDs missing, RBAC) reach the caller.
    leading = startControllers();
    await leading;
  }
  return {
    metrics,
    healthPort: health?.port,
    leading,
    async stop() {
      clearInterval(gaugeTimer);
      stopCounting();
      await elector?.stop();
      await stopControllers();
      await health?.shutdown();
      opts.agents.close?.();
    },
  };
}
