/**
 * The PodMigration reconciler on the shared skeleton (_reconcile.ts: get,
 * delete or ensure the finalizer, one phase step, one status patch with
 * observedGeneration); here are its Events on a phase change and the
 * finalizer's release at the end. The phases live in
 * pod_migration_phases.ts; the restored pod's hand-over in
 * pod_migration_restore.ts.
 * @module
 */
import type { PodMigration } from "../api/mod.ts";
import { sourceFreeze, sourceFreezeAction } from "./pod_migration_freeze.ts";
import { removeFinalizer } from "../kube/lpm_client.ts";
import type { ReconcilerDeps } from "./deps.ts";
import { keyOf, type Reconcile, splitKey } from "./runtime/controller.ts";
import { objectReconciler } from "./_reconcile.ts";
import type { Logger } from "../base/log.ts";
import { isTerminal } from "./_status.ts";
import { deleteRestoredPod, restoredStillRuns, runPhase } from "./pod_migration_phases.ts";
import { expireFinished } from "./pod_migration_ttl.ts";
import { releasePreCopy } from "./pod_migration_pre_copy.ts";

/** Finalizer that lets an interrupted migration clean up its restored pod. */
export const PM_FINALIZER = "lpm.my.domain/podmigration";

/** Builds the PodMigration reconcile function. */
export function podMigrationReconciler(deps: ReconcilerDeps): Reconcile {
  return objectReconciler<PodMigration>(deps, {
    plural: "podmigrations",
    finalizer: (pm) => isTerminal(pm.status?.phase) ? undefined : PM_FINALIZER,
    reconcileDelete: (pm, log) => reconcileDelete(deps, pm, log),
    reconcileNormal: (pm, status, log) =>
      runPhase(deps, pm, status, log.with({ phase: status.phase ?? "Pending" })),
    patched(pm, status, before, log) {
      if (status.phase === before.phase) return;
      log.info("phase changed", { from: before.phase ?? "", to: status.phase });
      deps.events[status.phase === "Failed" ? "warning" : "normal"](
        pm,
        `Phase${status.phase}`,
        status.phase === "Failed"
          ? status.message ?? "Migration failed"
          : `${before.phase ?? "New"} -> ${status.phase}`,
      );
    },
    async done(pm, status, before, result, log) {
      if (isTerminal(status.phase)) {
        // Once, as it ends: the rounds served (or the migration failed before they could).
        if (before.phase !== status.phase && status.preCopy) {
          void releasePreCopy(deps, pm, status, log);
        }
        const { namespace, name } = splitKey(keyOf(pm));
        await removeFinalizer(
          deps.lpm,
          "podmigrations",
          (await deps.cache.get("podmigrations", namespace, name))!,
          PM_FINALIZER,
        );
        return await expireFinished(deps, pm, status, log);
      }
      // A phase change moves on at once; otherwise the step said when to look again.
      return status.phase !== before.phase ? { requeueAfterMs: 0 } : result;
    },
  });
}

async function reconcileDelete(deps: ReconcilerDeps, pm: PodMigration, log: Logger): Promise<void> {
  // A migration deleted before it finished must not leave a half-restored pod
  // behind (recorded or not: deleteRestoredPod).
  let restored: string | undefined;
  if (pm.status?.phase !== "Succeeded") {
    restored = await deleteRestoredPod(deps, pm, pm.status ?? {}, log);
  }
  // ...nor a frozen source: it goes on where it stopped, once the restored copy has stopped.
  const frozen = pm.status?.conditions?.some((c) =>
    c.type === "SourceFrozen" && c.status === "True"
  );
  if (frozen && !isTerminal(pm.status?.phase)) {
    const stillRuns = restored ? await restoredStillRuns(deps, pm, pm.status!, restored) : "";
    if (stillRuns) throw new Error(`${stillRuns}; the source stays frozen until then`);
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
