/**
 * The reconcile skeleton every lpm object reconciler shares (Cluster API's):
 * get the object (gone: done) -> deleting ? reconcileDelete -> ensure the
 * finalizer -> snapshot the status -> reconcileNormal edits a copy -> one
 * deferred status patch (only when something changed) that sets
 * `observedGeneration`, also when the step threw.
 *
 * The retention reconciler is not built on it: it owns one field of a
 * class's status (`status.retention`) and patches that field alone.
 * @module
 */
import { ensureFinalizer, type LpmObject, type LpmPlural } from "../kube/lpm_client.ts";
import type { ReconcilerDeps } from "./deps.ts";
import { type Reconcile, type ReconcileResult, splitKey } from "./runtime/controller.ts";
import type { Logger } from "../base/log.ts";
import { canonicalJson } from "../base/canonical_json.ts";

/** A status as the skeleton handles it. */
export type StatusOf<T extends LpmObject> = NonNullable<T["status"]> & {
  observedGeneration?: number;
  phase?: string;
};

/** One kind's parts for {@linkcode objectReconciler}. */
export interface ObjectReconciler<T extends LpmObject> {
  /** The kind's resource. */
  plural: LpmPlural;
  /** The finalizer to ensure before any work, if this object gets one. */
  finalizer?(obj: T): string | undefined;
  /** Cleans up after a deleted object (and lets its finalizer go). */
  reconcileDelete?(obj: T, log: Logger): Promise<ReconcileResult>;
  /** One step toward the spec; edits `status` (a copy) in place. */
  reconcileNormal(obj: T, status: StatusOf<T>, log: Logger): Promise<ReconcileResult>;
  /** After the status patch, also when the step threw (phase Events). */
  patched?(obj: T, status: StatusOf<T>, before: StatusOf<T>, log: Logger): void;
  /** After a step that did not throw and its patch: what comes next. */
  done?(
    obj: T,
    status: StatusOf<T>,
    before: StatusOf<T>,
    result: ReconcileResult,
    log: Logger,
  ): Promise<ReconcileResult>;
}

/** Builds a reconcile function from a kind's parts. */
export function objectReconciler<T extends LpmObject>(
  deps: ReconcilerDeps,
  r: ObjectReconciler<T>,
): Reconcile {
  return async (key: string, log: Logger): Promise<ReconcileResult> => {
    const { namespace, name } = splitKey(key);
    let obj = await deps.cache.get<T>(r.plural, namespace, name);
    if (!obj) return;
    if (obj.metadata?.deletionTimestamp) return await r.reconcileDelete?.(obj, log);
    const finalizer = r.finalizer?.(obj);
    if (finalizer) obj = await ensureFinalizer(deps.lpm, r.plural, obj, finalizer) as T;
    const snapshot = canonicalJson(obj.status ?? {});
    const before = JSON.parse(snapshot) as StatusOf<T>;
    const status = structuredClone(obj.status ?? {}) as StatusOf<T>;
    let result: ReconcileResult;
    try {
      result = await r.reconcileNormal(obj, status, log);
    } finally {
      status.observedGeneration = obj.metadata?.generation;
      // Key order is not a change (the API server orders fields its own way).
      if (canonicalJson(status) !== snapshot) {
        await deps.lpm.patchStatus(r.plural, namespace, name, status);
      }
      r.patched?.(obj, status, before, log);
    }
    return r.done ? await r.done(obj, status, before, result, log) : result;
  };
}
