/**
 * The PodMigration reconciler skeleton: get the object, handle deletion,
 * ensure the finalizer, run one phase step, and patch the status once at
 * the end (with observedGeneration). The phases live in
 * pod_migration_phases.ts; the restored pod's hand-over in
 * pod_migration_restore.ts.
 * @module
 */
import type { PodMigration } from "../api/mod.ts";
import { sourceFreeze, sourceFreezeAction } from "./pod_migration_freeze.ts";
import { apiStatus, ensureFinalizer, removeFinalizer } from "../kube/lpm_client.ts";
import type { ReconcilerDeps } from "./deps.ts";
import { type Reconcile, type ReconcileResult, splitKey } from "./runtime/controller.ts";
import type { Logger } from "../base/log.ts";
import { isTerminal } from "./_status.ts";
import { runPhase } from "./pod_migration_phases.ts";
import type { MigrationStatus } from "./pod_migration_status.ts";

/** Finalizer that lets an interrupted migration clean up its restored pod. */
export const PM_FINALIZER = "lpm.my.domain/podmigration";

/** Builds the PodMigration reconcile function. */
export function podMigrationReconciler(deps: ReconcilerDeps): Reconcile {
  return async (key: string, log: Logger): Promise<ReconcileResult> => {
    const { namespace, name } = splitKey(key);
    let pm = await deps.lpm.get<PodMigration>("podmigrations", namespace, name);
    if (!pm) return;
    if (pm.metadata?.deletionTimestamp) {
      await reconcileDelete(deps, pm, log);
      return;
    }
    if (!isTerminal(pm.status?.phase)) {
      pm = await ensureFinalizer(deps.lpm, "podmigrations", pm, PM_FINALIZER) as PodMigration;
    }
    const before = JSON.stringify(pm.status ?? {});
    const status = structuredClone(pm.status ?? {}) as MigrationStatus;
    const phaseBefore = status.phase;
    let result: ReconcileResult;
    try {
      result = await runPhase(deps, pm, status, log.with({ phase: status.phase ?? "Pending" }));
    } finally {
      status.observedGeneration = pm.metadata?.generation;
      if (JSON.stringify(status) !== before) {
        await deps.lpm.patchStatus("podmigrations", namespace, name, status);
      }
      if (status.phase !== phaseBefore) {
        log.info("phase changed", { from: phaseBefore ?? "", to: status.phase });
        deps.events[status.phase === "Failed" ? "warning" : "normal"](
          pm,
          `Phase${status.phase}`,
          status.phase === "Failed"
            ? status.message ?? "Migration failed"
            : `${phaseBefore ?? "New"} -> ${status.phase}`,
        );
      }
    }
    if (isTerminal(status.phase)) {
      await removeFinalizer(
        deps.lpm,
        "podmigrations",
        (await deps.lpm.get("podmigrations", namespace, name))!,
        PM_FINALIZER,
      );
      return;
    }
    // A phase change moves on at once; otherwise the step said when to look again.
    return status.phase !== phaseBefore ? { requeueAfterMs: 0 } : result;
  };
}

async function reconcileDelete(deps: ReconcilerDeps, pm: PodMigration, log: Logger): Promise<void> {
  const ns = pm.metadata!.namespace!;
  const restored = pm.status?.restoredPodName;
  // A migration deleted before it finished must not leave a half-restored pod behind.
  if (restored && pm.status?.phase !== "Succeeded") {
    try {
      await deps.core.deleteNamespacedPod({ name: restored, namespace: ns, gracePeriodSeconds: 0 });
      log.info("deleted the restored pod of an unfinished migration", { pod: restored });
    } catch (err) {
      if (apiStatus(err) !== 404) throw err;
    }
  }
  // ...nor a frozen source: it goes on where it stopped.
  const frozen = pm.status?.conditions?.some((c) =>
    c.type === "SourceFrozen" && c.status === "True"
  );
  if (frozen && !isTerminal(pm.status?.phase)) {
    const freeze = await sourceFreeze(deps, pm, pm.status!).catch(() => undefined);
    if (freeze) {
      await sourceFreezeAction(deps, freeze, "THAW").then(
        () => log.info("thawed the source of a deleted migration", { pod: pm.spec.podName }),
        (err) => log.warn("could not thaw the source (its agent will at the deadline)", { err }),
      );
    }
  }
  await removeFinalizer(deps.lpm, "podmigrations", pm, PM_FINALIZER);
}
