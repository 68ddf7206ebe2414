/**
 * What goes with a deleted standalone ContainerCheckpoint (one no
 * PodCheckpoint owns; those go with their PodCheckpoint): its stored archive
 * and metadata (`<ns>/<pod>/<uid>/`) and its checkpoint and volume images,
 * unless its class says `deletionPolicy: Retain`. As for PodCheckpoints
 * (`pod_checkpoint_delete.ts`), the finalizer is removed only once that is
 * done, and data left in place is said in an Event.
 * @module
 */
import type { CheckpointStorageClass, ContainerCheckpoint } from "../api/mod.ts";
import { removeFinalizer } from "../kube/lpm_client.ts";
import type { ReconcilerDeps } from "./deps.ts";
import type { Logger } from "../base/log.ts";
import {
  deleteOnNodes,
  nodeDeletionNote,
  openClassData,
  removeCheckpoint,
} from "./checkpoint_data.ts";
import { PC_FINALIZER } from "./pod_checkpoint_delete.ts";

/** The same finalizer name as PodCheckpoints': "my stored data goes with me". */
export const CC_FINALIZER = PC_FINALIZER;

/** True when no PodCheckpoint owns `cc` (its data is its own). */
export function standalone(cc: ContainerCheckpoint): boolean {
  return !cc.metadata?.ownerReferences?.some((o) => o.kind === "PodCheckpoint");
}

/** Removes the data of a standalone ContainerCheckpoint being deleted, then its finalizer. */
export async function reconcileContainerCheckpointDelete(
  deps: ReconcilerDeps,
  cc: ContainerCheckpoint,
  log: Logger,
): Promise<void> {
  if (!cc.metadata?.finalizers?.includes(CC_FINALIZER)) return;
  const className = cc.status?.archive?.storageClassName ?? cc.spec.storageClassName;
  const images = [cc.status?.image?.reference, cc.status?.volumes?.image]
    .filter((r): r is string => !!r);
  // The agent stores a standalone checkpoint under its operation id, the object's uid.
  const prefix = `${cc.metadata.namespace}/${cc.spec.podName}/${cc.metadata.uid}/`;
  const cls = className
    ? await deps.cache.get<CheckpointStorageClass>("checkpointstorageclasses", "", className)
    : undefined;
  if (!cls) {
    if (cc.status?.archive || images.length) {
      deps.events.warning(
        cc,
        "CheckpointDataOrphaned",
        `CheckpointStorageClass "${
          className ?? ""
        }" does not exist: the data under "${prefix}" stays`,
      );
    }
  } else if (cls.spec.deletionPolicy === "Retain") {
    deps.events.normal(
      cc,
      "CheckpointDataRetained",
      `Class "${cls.metadata!.name}" retains checkpoint data: "${prefix}" and its images stay`,
    );
  } else if (cc.status?.archive || images.length) {
    const data = await openClassData(deps, cls);
    try {
      const r = await removeCheckpoint(data, prefix, { knownImages: images });
      const onNodes = data.store ? undefined : await deleteOnNodes(deps, [cc]);
      log.info("checkpoint data deleted", { prefix, objects: r.objects });
      deps.events.normal(
        cc,
        "CheckpointDataDeleted",
        `Deleted ${r.objects} stored object(s) under "${prefix}" and ${r.images.deleted.length} image(s)` +
          (onNodes ? nodeDeletionNote(cls, onNodes) : ""),
      );
    } finally {
      data.close();
    }
  }
  await removeFinalizer(deps.lpm, "containercheckpoints", cc, CC_FINALIZER);
}
