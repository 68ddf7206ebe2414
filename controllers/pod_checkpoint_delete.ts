/**
 * What goes with a deleted PodCheckpoint: its stored archives and metadata
 * (`<ns>/<pod>/<uid>/` in its class's store) and its checkpoint and volume
 * images in the class's registry, unless the class says
 * `deletionPolicy: Retain` (as a PersistentVolume's reclaim policy, or a
 * Velero backup's). The finalizer is removed only once that is done, so a
 * store or registry that is down holds the object in Terminating and the
 * removal is retried; nothing is ever left behind silently: a class that is
 * gone, or whose store the controller cannot reach, is said in an Event.
 * @module
 */
import type { CheckpointStorageClass, ContainerCheckpoint, PodCheckpoint } from "../api/mod.ts";
import { removeFinalizer } from "../kube/lpm_client.ts";
import type { ReconcilerDeps } from "./deps.ts";
import type { Logger } from "../base/log.ts";
import {
  deleteOnNodes,
  nodeDeletionNote,
  openClassData,
  removeCheckpoint,
} from "./checkpoint_data.ts";

/** Finalizer that removes a PodCheckpoint's stored data and images with it. */
export const PC_FINALIZER = "lpm.my.domain/checkpoint-data";

/** Label on each ContainerCheckpoint naming its PodCheckpoint (as pod_checkpoint.ts sets it). */
const POD_CHECKPOINT_LABEL = "lpm.my.domain/pod-checkpoint";

/** Removes the data of a PodCheckpoint being deleted (per its class's policy), then its finalizer. */
export async function reconcilePodCheckpointDelete(
  deps: ReconcilerDeps,
  pc: PodCheckpoint,
  log: Logger,
): Promise<void> {
  if (!pc.metadata?.finalizers?.includes(PC_FINALIZER)) return;
  const ns = pc.metadata.namespace!;
  const ccs = await deps.cache.list<ContainerCheckpoint>("containercheckpoints", ns, {
    labelSelector: `${POD_CHECKPOINT_LABEL}=${pc.metadata.name}`,
  });
  const mine = ccs.filter((cc) =>
    cc.metadata?.ownerReferences?.some((o) => o.uid === pc.metadata!.uid)
  );
  const className = pc.spec.storageClassName ??
    mine.find((cc) => cc.status?.archive?.storageClassName)?.status?.archive?.storageClassName ??
    mine.find((cc) => cc.spec.storageClassName)?.spec.storageClassName;
  const images = mine.flatMap((cc) =>
    [cc.status?.image?.reference, cc.status?.volumes?.image].filter((r): r is string => !!r)
  );
  const prefix = `${ns}/${pc.spec.podName}/${pc.metadata.uid}/`;
  const stored = mine.some((cc) => cc.status?.archive?.key) || images.length > 0;
  const cls = className
    ? await deps.cache.get<CheckpointStorageClass>("checkpointstorageclasses", "", className)
    : undefined;
  if (!cls) {
    if (className || stored) {
      deps.events.warning(
        pc,
        "CheckpointDataOrphaned",
        `CheckpointStorageClass "${className ?? ""}" does not exist: the data under "${prefix}"` +
          (images.length ? ` and the images ${images.join(", ")}` : "") + " are left in place",
      );
    }
  } else if (cls.spec.deletionPolicy === "Retain") {
    deps.events.normal(
      pc,
      "CheckpointDataRetained",
      `Class "${cls.metadata!.name}" retains checkpoint data: "${prefix}" and its images stay`,
    );
  } else {
    const data = await openClassData(deps, cls);
    try {
      const r = await removeCheckpoint(data, prefix, { knownImages: images });
      const onNodes = data.store ? undefined : await deleteOnNodes(deps, mine);
      const message =
        `Deleted ${r.objects} stored object(s) under "${prefix}" and ${r.images.deleted.length} image(s)` +
        (r.images.refused.length
          ? `; left ${r.images.refused.join(", ")} (outside the class's repository)`
          : "") +
        (onNodes ? nodeDeletionNote(cls, onNodes) : "");
      log.info("checkpoint data deleted", { prefix, objects: r.objects });
      deps.events.normal(pc, "CheckpointDataDeleted", message);
    } finally {
      data.close();
    }
  }
  await removeFinalizer(deps.lpm, "podcheckpoints", pc, PC_FINALIZER);
}
