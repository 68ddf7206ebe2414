/**
 * Retention for classes whose store lives on the nodes (`local`, `pvc`):
 * the controller cannot list such a store, so it counts the checkpoints the
 * cluster's objects describe instead, the Succeeded PodCheckpoints (and
 * standalone ContainerCheckpoints) of the class, and applies the same rule as
 * the bucket path (`selectForRetention`: max age by checkpoint time, max
 * count per pod, newest kept, needed ones protected). A checkpoint is
 * collected by deleting its object: its finalizer has the node's agent
 * delete the archives (`deletionPolicy: Delete`) or keeps them (`Retain`).
 * @module
 */
import type {
  CheckpointStorageClass,
  ContainerCheckpoint,
  PodCheckpoint,
  RetentionStatus,
} from "../api/mod.ts";
import { type RetentionPolicy, selectForRetention } from "../storage/mod.ts";
import type { ReconcilerDeps } from "./deps.ts";
import type { Logger } from "../base/log.ts";
import { apiMessage, apiStatus } from "../kube/lpm_client.ts";

/** One checkpoint of a node class, as its objects describe it. */
export interface NodeCheckpoint {
  kind: "PodCheckpoint" | "ContainerCheckpoint";
  namespace: string;
  name: string;
  /** The owning object's uid (the checkpoint id of its storage prefix). */
  id: string;
  pod: string;
  /** Checkpoint time, epoch ms. */
  time: number;
  /** Archive bytes its ContainerCheckpoints report. */
  bytes: number;
}

/** What {@linkcode selectNodeCollection} decided. */
export interface NodeSelection {
  /** Objects to delete, with why. */
  collect: (NodeCheckpoint & { reason: "maxAge" | "maxCount" })[];
  /** Objects retention would collect but something still needs. */
  protected: NodeCheckpoint[];
  /** Checkpoints left once `collect` is gone, and their bytes. */
  checkpoints: number;
  bytes: number;
}

/** Options of {@linkcode selectNodeCollection}. */
export interface NodeSelectionOptions {
  className: string;
  retention?: RetentionPolicy;
  now: Date;
  /** True when a checkpoint (by id, `<ns>/<pod>/<id>/`) is still needed. */
  needed: (id: string, prefix: string) => boolean;
}

/** The first of `t` that is a time, epoch ms (the creation time, typed a Date, is a string on the wire). */
const time = (...t: (string | Date | undefined)[]) =>
  t.map((x) => (x ? new Date(x).getTime() : NaN)).find((x) => !Number.isNaN(x)) ?? 0;

/** The Succeeded checkpoints of class `className`, from its PodCheckpoints and ContainerCheckpoints. */
export function nodeCheckpoints(
  pcs: PodCheckpoint[],
  ccs: ContainerCheckpoint[],
  className: string,
): NodeCheckpoint[] {
  const children = new Map<string, ContainerCheckpoint[]>();
  const out: NodeCheckpoint[] = [];
  for (const cc of ccs) {
    const owner = cc.metadata?.ownerReferences?.find((o) => o.kind === "PodCheckpoint");
    if (owner) {
      children.set(owner.uid, [...children.get(owner.uid) ?? [], cc]);
      continue;
    }
    const m = cc.metadata!;
    if ((cc.status?.archive?.storageClassName ?? cc.spec.storageClassName) !== className) continue;
    if (cc.status?.phase !== "Succeeded" || m.deletionTimestamp) continue;
    out.push({
      kind: "ContainerCheckpoint",
      namespace: m.namespace!,
      name: m.name!,
      id: m.uid!,
      pod: `${m.namespace}/${cc.spec.podName}`,
      time: time(cc.status.checkpointTime, cc.status.completionTime, m.creationTimestamp),
      bytes: cc.status.archive?.size ?? 0,
    });
  }
  for (const pc of pcs) {
    const m = pc.metadata!;
    const mine = children.get(m.uid!) ?? [];
    const cls = pc.spec.storageClassName ??
      mine.find((cc) => cc.status?.archive?.storageClassName)?.status?.archive?.storageClassName;
    if (cls !== className || pc.status?.phase !== "Succeeded" || m.deletionTimestamp) continue;
    out.push({
      kind: "PodCheckpoint",
      namespace: m.namespace!,
      name: m.name!,
      id: m.uid!,
      pod: `${m.namespace}/${pc.spec.podName}`,
      time: time(
        pc.status.completionTime,
        ...mine.map((cc) => cc.status?.checkpointTime).sort().reverse(),
        m.creationTimestamp,
      ),
      bytes: mine.reduce((n, cc) => n + (cc.status?.archive?.size ?? 0), 0),
    });
  }
  return out;
}

/** Objects in, objects to delete out: the class's retention over its node checkpoints. */
export function selectNodeCollection(
  checkpoints: NodeCheckpoint[],
  opts: NodeSelectionOptions,
): NodeSelection {
  const byId = new Map(checkpoints.map((cp) => [cp.id, cp]));
  const prefix = (cp: NodeCheckpoint) => `${cp.pod}/${cp.id}/`;
  const sel = selectForRetention(checkpoints, {
    retention: opts.retention,
    now: opts.now,
    protect: (id) => opts.needed(id, prefix(byId.get(id)!)),
  });
  const collect = sel.collect.map(({ id, reason }) => ({ ...byId.get(id)!, reason }));
  const gone = new Set(sel.collect.map((c) => c.id));
  const left = checkpoints.filter((cp) => !gone.has(cp.id));
  return {
    collect,
    protected: sel.protected.map((id) => byId.get(id)!),
    checkpoints: left.length,
    bytes: left.reduce((n, cp) => n + cp.bytes, 0),
  };
}

/**
 * One retention pass over a node class: selects, deletes the collected
 * objects (their finalizers handle the data), and fills `status`.
 */
export async function nodeRetentionPass(
  deps: ReconcilerDeps,
  cls: CheckpointStorageClass,
  status: RetentionStatus,
  known: {
    needed: (id: string, prefix: string) => boolean;
    pcs: PodCheckpoint[];
    ccs: ContainerCheckpoint[];
  },
  log: Logger,
): Promise<void> {
  const name = cls.metadata!.name!;
  const sel = selectNodeCollection(nodeCheckpoints(known.pcs, known.ccs, name), {
    className: name,
    retention: cls.spec.retention,
    now: deps.now(),
    needed: known.needed,
  });
  const retain = cls.spec.deletionPolicy === "Retain";
  const fate = retain
    ? `its data on the nodes' "${cls.spec.provider}" storage is retained (deletionPolicy Retain)`
    : `the node's agent deletes its archives`;
  let failed = 0;
  let failedBytes = 0;
  for (const cp of sel.collect) {
    const why = cp.reason === "maxAge"
      ? `older than ${cls.spec.retention?.maxAge}`
      : `more than ${cls.spec.retention?.maxCount} checkpoints of its pod`;
    const what = `${cp.kind} "${cp.namespace}/${cp.name}"`;
    try {
      await deps.lpm.delete(
        cp.kind === "PodCheckpoint" ? "podcheckpoints" : "containercheckpoints",
        cp.namespace,
        cp.name,
      );
    } catch (err) {
      if (apiStatus(err) === 404) continue; // gone meanwhile
      failed++;
      failedBytes += cp.bytes;
      deps.events.warning(cls, "CollectionFailed", `Cannot collect ${what}: ${apiMessage(err)}`);
      continue;
    }
    log.info("checkpoint collected", { checkpoint: `${cp.pod}/${cp.id}/`, reason: cp.reason });
    deps.events.normal(cls, "CheckpointCollected", `Collected ${what}: ${why}; ${fate}`);
  }
  const collected = sel.collect.length - failed;
  Object.assign(status, {
    lastRunTime: deps.now().toISOString(),
    checkpoints: sel.checkpoints + failed,
    bytes: sel.bytes + failedBytes,
    collected,
    protected: sel.protected.length,
    message:
      `${sel.checkpoints + failed} checkpoint(s), ${sel.bytes + failedBytes} bytes of archives ` +
      `(as their ContainerCheckpoints report; volume images not counted); collected ${collected}` +
      (retain && collected ? " (data retained on the nodes: deletionPolicy Retain)" : "") +
      (sel.protected.length ? `, kept ${sel.protected.length} still in use` : "") +
      (failed ? `, ${failed} failed (retried)` : ""),
  });
}
