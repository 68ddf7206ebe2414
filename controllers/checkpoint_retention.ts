/**
 * The retention reconciler, one key per CheckpointStorageClass: applies the
 * class's `spec.retention` (max age, max count per pod) to both copies of
 * every checkpoint, its stored archives and metadata and its images in the
 * registry, then removes the store's debris. It runs every `periodMs` and
 * whenever a container checkpoint of the class succeeds (the manager
 * enqueues the class), so a new checkpoint pushes the oldest out at once.
 *
 * A checkpoint something still needs is never collected: one whose
 * PodCheckpoint or ContainerCheckpoint has not finished, one a migration
 * that has not finished points at, and one a PodRestore that has not
 * finished reads (by storage key, or by image). The PodCheckpoint (or
 * standalone ContainerCheckpoint) of a collected checkpoint is deleted too,
 * so `kubectl get pckpt` never lists a checkpoint whose data is gone.
 *
 * The store is listed by the controller; a class whose store lives on the
 * nodes (`local`, `pvc`) is out of its reach, so its checkpoints are counted
 * from their objects instead and collected by deleting those
 * (`checkpoint_retention_nodes.ts`).
 * @module
 */
import type {
  CheckpointStorageClass,
  ContainerCheckpoint,
  PodCheckpoint,
  PodMigration,
  PodRestore,
} from "../api/mod.ts";
import { collectGarbage } from "../storage/mod.ts";
import { parseReference } from "../oci/mod.ts";
import type { ReconcilerDeps } from "./deps.ts";
import type { Reconcile, ReconcileResult } from "./runtime/controller.ts";
import type { Logger } from "../base/log.ts";
import { isTerminal } from "./_status.ts";
import { apiMessage, apiStatus } from "../kube/lpm_client.ts";
import {
  deleteImages,
  imagesInMetadata,
  NODE_PROVIDERS,
  openClassData,
} from "./checkpoint_data.ts";
import { nodeRetentionPass } from "./checkpoint_retention_nodes.ts";

type RetentionStatus = NonNullable<NonNullable<CheckpointStorageClass["status"]>["retention"]>;

/** Options of the retention reconciler. */
export interface RetentionOptions {
  /** Time between two passes over one class. Default 10 minutes. */
  periodMs?: number;
  /** Store debris younger than this is left alone (uploads in flight). Default one hour. */
  debrisGraceMs?: number;
}

/** One checkpoint as the cluster knows it: the object that owns it, and its images. */
interface KnownCheckpoint {
  kind: "PodCheckpoint" | "ContainerCheckpoint";
  namespace: string;
  name: string;
  images: string[];
  needed: boolean;
}

/**
 * What the cluster says about the checkpoints of class `className`, by
 * checkpoint id (the PodCheckpoint's uid, or a standalone
 * ContainerCheckpoint's): who owns each, its images, and whether something
 * still needs it. `neededPrefixes` holds the storage keys running restores read.
 */
export async function clusterCheckpoints(
  deps: ReconcilerDeps,
  className: string,
): Promise<{
  byId: Map<string, KnownCheckpoint>;
  neededPrefixes: Set<string>;
  pcs: PodCheckpoint[];
  ccs: ContainerCheckpoint[];
}> {
  // From the API, not the cache: what is not seen here as needed gets deleted,
  // and a checkpoint or restore created a moment ago may not be cached yet.
  const [pcs, ccs, pms, prs] = await Promise.all([
    deps.lpm.list<PodCheckpoint>("podcheckpoints"),
    deps.lpm.list<ContainerCheckpoint>("containercheckpoints"),
    deps.lpm.list<PodMigration>("podmigrations"),
    deps.lpm.list<PodRestore>("podrestores"),
  ]);
  const byId = new Map<string, KnownCheckpoint>();
  const pcByName = new Map<string, PodCheckpoint>();
  for (const pc of pcs) {
    const m = pc.metadata!;
    pcByName.set(`${m.namespace}/${m.name}`, pc);
    byId.set(m.uid!, {
      kind: "PodCheckpoint",
      namespace: m.namespace!,
      name: m.name!,
      images: [],
      needed: !isTerminal(pc.status?.phase),
    });
  }
  const idByDigest = new Map<string, string>();
  for (const cc of ccs) {
    const m = cc.metadata!;
    const owner = m.ownerReferences?.find((o) => o.kind === "PodCheckpoint");
    const id = owner?.uid ?? m.uid!;
    let known = byId.get(id);
    if (!known) {
      byId.set(
        id,
        known = {
          kind: owner ? "PodCheckpoint" : "ContainerCheckpoint",
          namespace: m.namespace!,
          name: owner?.name ?? m.name!,
          images: [],
          needed: false,
        },
      );
    }
    if (!isTerminal(cc.status?.phase)) known.needed = true;
    for (const ref of [cc.status?.image?.reference, cc.status?.volumes?.image]) {
      if (!ref) continue;
      known.images.push(ref);
      const digest = ref.split("@")[1];
      if (digest) idByDigest.set(digest, id);
    }
  }
  for (const pm of pms) {
    if (isTerminal(pm.status?.phase) || !pm.status?.podCheckpointRef?.name) continue;
    const pc = pcByName.get(`${pm.metadata!.namespace}/${pm.status.podCheckpointRef.name}`);
    const known = pc && byId.get(pc.metadata!.uid!);
    if (known) known.needed = true;
  }
  const neededPrefixes = new Set<string>();
  for (const pr of prs) {
    if (isTerminal(pr.status?.phase)) continue;
    const storage = pr.spec.source.storage;
    if (storage?.storageClassName === className) {
      const segs = storage.key.split("/");
      if (segs.length >= 3) neededPrefixes.add(`${segs[0]}/${segs[1]}/${segs[2]}/`);
    }
    for (const r of pr.spec.source.image?.references ?? []) {
      let digest: string | undefined;
      try {
        digest = parseReference(r.image).digest;
      } catch {
        continue;
      }
      const id = digest && idByDigest.get(digest);
      const known = id && byId.get(id);
      if (known) known.needed = true;
    }
  }
  return { byId, neededPrefixes, pcs, ccs };
}

/** Digests of the images named by every checkpoint but `id`. */
function digestsNamedByOthers(
  byId: Map<string, { images: string[] }>,
  id: string,
): Set<string | undefined> {
  const out = new Set<string | undefined>();
  for (const [other, known] of byId) {
    if (other !== id) { for (const ref of known.images) out.add(ref.split("@")[1]); }
  }
  return out;
}

/** Builds the retention reconcile function (key: a class name). */
export function checkpointRetentionReconciler(
  deps: ReconcilerDeps,
  opts: RetentionOptions = {},
): Reconcile {
  const period = opts.periodMs ?? 600_000;
  return async (name: string, log: Logger): Promise<ReconcileResult> => {
    const cls = await deps.cache.get<CheckpointStorageClass>("checkpointstorageclasses", "", name);
    if (!cls || cls.metadata?.deletionTimestamp) return;
    const started = deps.now();
    const next = new Date(started.getTime() + period).toISOString();
    const status: RetentionStatus = { nextRunTime: next };
    if (NODE_PROVIDERS.includes(cls.spec.provider)) {
      try {
        const { byId, neededPrefixes, pcs, ccs } = await clusterCheckpoints(deps, name);
        const needed = (id: string, prefix: string) =>
          neededPrefixes.has(prefix) || byId.get(id)?.needed === true;
        await nodeRetentionPass(deps, cls, status, { needed, pcs, ccs }, log);
      } catch (err) {
        status.lastRunTime = deps.now().toISOString();
        status.message = `Retention pass failed: ${apiMessage(err)}`;
        deps.events.warning(cls, "RetentionFailed", status.message);
        await patchRetention(deps, name, status);
        throw err;
      }
      await patchRetention(deps, name, status);
      return { requeueAfterMs: period };
    }
    const data = await openClassData(deps, cls);
    try {
      const { byId, neededPrefixes } = await clusterCheckpoints(deps, name);
      const idOf = (prefix: string) => prefix.split("/")[2];
      const result = await collectGarbage(data.store!, {
        retention: cls.spec.retention,
        debrisGraceMs: opts.debrisGraceMs,
        protect: (prefix) => neededPrefixes.has(prefix) || byId.get(idOf(prefix))?.needed === true,
        beforeRemove: async (prefix, keys) => {
          const all = [
            ...await imagesInMetadata(data.store!, keys),
            ...byId.get(idOf(prefix))?.images ?? [],
          ];
          // A manifest deleted by digest is gone for every tag: never one that
          // a checkpoint still in the cluster names too.
          const inUse = digestsNamedByOthers(byId, idOf(prefix));
          const images = all.filter((ref) => !inUse.has(ref.split("@")[1]));
          if (images.length < all.length) {
            log.info("images another checkpoint names too were kept", { checkpoint: prefix });
          }
          const d = await deleteImages(data, images);
          if (d.refused.length) {
            log.warn("images outside the class's repository were left alone", {
              checkpoint: prefix,
              images: d.refused.join(" "),
            });
          }
        },
      });
      for (const r of result.removed) {
        const known = byId.get(idOf(r.prefix));
        const why = r.reason === "maxAge"
          ? `older than ${cls.spec.retention?.maxAge}`
          : `more than ${cls.spec.retention?.maxCount} checkpoints of its pod`;
        log.info("checkpoint collected", { checkpoint: r.prefix, reason: r.reason });
        deps.events.normal(
          cls,
          "CheckpointCollected",
          `Collected checkpoint "${r.prefix}": ${why}`,
        );
        if (known) {
          // Its data is gone: so goes the object that describes it.
          await deps.lpm.delete(
            known.kind === "PodCheckpoint" ? "podcheckpoints" : "containercheckpoints",
            known.namespace,
            known.name,
          );
        }
      }
      for (const f of result.failed) {
        deps.events.warning(
          cls,
          "CollectionFailed",
          `Cannot collect checkpoint "${f.prefix}": ${f.error}`,
        );
      }
      Object.assign(status, {
        lastRunTime: deps.now().toISOString(),
        checkpoints: result.checkpoints,
        bytes: result.bytes,
        collected: result.removed.length,
        protected: result.protected.length,
        message:
          `${result.checkpoints} checkpoint(s), ${result.bytes} bytes; collected ${result.removed.length}` +
          (result.protected.length ? `, kept ${result.protected.length} still in use` : "") +
          (result.failed.length ? `, ${result.failed.length} failed (retried)` : "") +
          (result.debrisRemoved ? `; removed ${result.debrisRemoved} debris item(s)` : ""),
      });
    } catch (err) {
      status.lastRunTime = deps.now().toISOString();
      status.message = `Retention pass failed: ${apiMessage(err)}`;
      deps.events.warning(cls, "RetentionFailed", status.message);
      await patchRetention(deps, name, status);
      throw err;
    } finally {
      data.close();
    }
    await patchRetention(deps, name, status);
    return { requeueAfterMs: period };
  };
}

/** Patches `status.retention` alone (the validation reconciler owns the rest). */
async function patchRetention(
  deps: ReconcilerDeps,
  name: string,
  retention: RetentionStatus,
): Promise<void> {
  try {
    await deps.lpm.patchStatus("checkpointstorageclasses", "", name, { retention });
  } catch (err) {
    if (apiStatus(err) !== 404) throw err; // the class went meanwhile: nothing to report on
  }
}
