/**
 * The CheckpointStorageClass reconciler, after Velero's
 * BackupStorageLocation: probe the backend (write, read back, delete) every
 * `validationPeriodMs`, and report Available/Unavailable with the time and a
 * message that says what to fix. At most one class may be the default: when
 * several claim it, each is told so.
 * @module
 */
import type { CheckpointStorageClass } from "../api/mod.ts";
import {
  decodeSecretData,
  defaultClassConflicts,
  validateEncryption,
  validateStorageClass,
} from "../storage/mod.ts";
import { insecureRegistryRefusal } from "../oci/mod.ts";
import { apiMessage, apiStatus, ensureFinalizer } from "../kube/lpm_client.ts";
import { CLASS_FINALIZER, reconcileClassDelete } from "./storage_class_delete.ts";
import type { ReconcilerDeps } from "./deps.ts";
import type { Reconcile, ReconcileResult } from "./runtime/controller.ts";
import type { Logger } from "../base/log.ts";
import { type Condition, setCondition } from "./_status.ts";

type Status = NonNullable<CheckpointStorageClass["status"]>;

/** Options of the storage class reconciler. */
export interface StorageClassOptions {
  /** Time between validations of one class. Default 60 s. */
  validationPeriodMs?: number;
}

/** Builds the CheckpointStorageClass reconcile function. */
export function storageClassReconciler(
  deps: ReconcilerDeps,
  opts: StorageClassOptions = {},
): Reconcile {
  const period = opts.validationPeriodMs ?? 60_000;
  return async (name: string, log: Logger): Promise<ReconcileResult> => {
    let cls = await deps.cache.get<CheckpointStorageClass>("checkpointstorageclasses", "", name);
    if (!cls) return;
    if (cls.metadata?.deletionTimestamp) return await reconcileClassDelete(deps, cls);
    cls = await ensureFinalizer(
      deps.lpm,
      "checkpointstorageclasses",
      cls,
      CLASS_FINALIZER,
    ) as CheckpointStorageClass;
    const now = deps.now();
    const last = cls.status?.lastValidationTime
      ? new Date(cls.status.lastValidationTime).getTime()
      : 0;
    const fresh = cls.status?.observedGeneration === cls.metadata?.generation &&
      now.getTime() - last < period;
    if (fresh) return { requeueAfterMs: period - (now.getTime() - last) };

    const status: Status = structuredClone(cls.status ?? {}) as Status;
    delete status.retention; // the retention reconciler's: a merge patch without it keeps it
    const conditions = (status.conditions ??= []) as Condition[];
    let secret: Record<string, string> | undefined;
    let result: { available: boolean; message: string };
    const ref = cls.spec.credentialsSecretRef;
    try {
      if (ref) {
        secret = decodeSecretData(
          await deps.core.readNamespacedSecret({ name: ref.name, namespace: ref.namespace }),
        );
      }
      const insecure = cls.spec.registry?.repository
        ? insecureRegistryRefusal(cls.spec.registry.repository, cls.spec.registry.insecure)
        : undefined;
      result = insecure
        ? { available: false, message: insecure }
        : await validateStorageClass(cls.spec, secret, { timeoutMs: 20_000 });
    } catch (err) {
      const why = apiStatus(err) === 404
        ? `credentials Secret "${ref?.namespace}/${ref?.name}" does not exist`
        : apiMessage(err);
      result = { available: false, message: `Cannot validate class "${name}": ${why}` };
    }
    const enc = await checkEncryption(deps, cls);
    status.encryption = enc.status;
    if (result.available && !enc.available) result = enc;
    const classes = await deps.cache.list<CheckpointStorageClass>("checkpointstorageclasses");
    const defaults = defaultClassConflicts(
      classes.map((c) => ({
        metadata: { name: c.metadata?.name },
        spec: { default: c.spec.default },
      })),
    );
    const wasPhase = status.phase;
    status.phase = result.available ? "Available" : "Unavailable";
    status.message = result.message;
    status.lastValidationTime = now.toISOString();
    status.observedGeneration = cls.metadata?.generation;
    setCondition(conditions, {
      type: "Available",
      status: result.available ? "True" : "False",
      reason: result.available ? "ProbeSucceeded" : "ProbeFailed",
      message: result.message,
      observedGeneration: cls.metadata?.generation,
    }, now);
    if (cls.spec.default) {
      setCondition(conditions, {
        type: "DefaultConflict",
        status: defaults.conflict ? "True" : "False",
        reason: defaults.conflict ? "SeveralDefaults" : "SingleDefault",
        message: defaults.conflict ? defaults.message : "This is the only default class",
        observedGeneration: cls.metadata?.generation,
      }, now);
      if (defaults.conflict) deps.events.warning(cls, "SeveralDefaults", defaults.message);
    }
    await deps.lpm.patchStatus("checkpointstorageclasses", "", name, status);
    if (wasPhase !== status.phase) {
      log.info("storage class phase changed", {
        from: wasPhase ?? "",
        to: status.phase,
        message: result.message,
      });
      deps.events[result.available ? "normal" : "warning"](cls, status.phase!, result.message);
    }
    return { requeueAfterMs: period };
  };
}

/** Validates `spec.encryption` with its Secret (a missing Secret is said, other errors too). */
async function checkEncryption(
  deps: ReconcilerDeps,
  cls: CheckpointStorageClass,
): Promise<{ available: boolean; message: string; status: string }> {
  const ref = cls.spec.encryption?.secretRef;
  let data: Record<string, string> | undefined;
  if (ref) {
    try {
      data = decodeSecretData(
        await deps.core.readNamespacedSecret({ name: ref.name, namespace: ref.namespace }),
      );
    } catch (err) {
      if (apiStatus(err) !== 404) {
        return {
          available: false,
          status: "Off",
          message: `spec.encryption.secretRef: cannot read Secret "${ref.namespace}/${ref.name}": ${
            apiMessage(err)
          }`,
        };
      }
    }
  }
  return await validateEncryption(cls.spec, data);
}
