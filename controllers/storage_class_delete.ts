/**
 * A storage class is not deleted under the checkpoints it holds (as a
 * PersistentVolumeClaim in use is protected): its finalizer stays while
 * PodCheckpoints, standalone ContainerCheckpoints or unfinished
 * PodMigrations or PodRestores name it, and the class says which and how to
 * let go. Deleting those objects removes their data (or keeps it, per
 * `deletionPolicy`), after which the class goes. Removing the finalizer by
 * hand orphans the data explicitly.
 * @module
 */
import type {
  CheckpointStorageClass,
  ContainerCheckpoint,
  PodCheckpoint,
  PodMigration,
  PodRestore,
} from "../api/mod.ts";
import { removeFinalizer } from "../kube/lpm_client.ts";
import type { ReconcilerDeps } from "./deps.ts";
import type { ReconcileResult } from "./runtime/controller.ts";
import { isTerminal } from "./_status.ts";

/** Finalizer that keeps a class while objects still use it. */
export const CLASS_FINALIZER = "lpm.my.domain/class-in-use";

/** The objects (`kind namespace/name`) that still use class `name`. */
export async function classUsers(deps: ReconcilerDeps, name: string): Promise<string[]> {
  const users: string[] = [];
  const key = (o: { metadata?: { namespace?: string; name?: string } }) =>
    `${o.metadata?.namespace}/${o.metadata?.name}`;
  // From the API, not the cache: "no users" lets the class go, and a
  // checkpoint created a moment ago may not be cached yet.
  const ccs = await deps.lpm.list<ContainerCheckpoint>("containercheckpoints");
  // A PodCheckpoint without a class uses the default one: its containers' archives say which.
  const classOf = (cc: ContainerCheckpoint) =>
    cc.status?.archive?.storageClassName ?? cc.spec.storageClassName;
  for (const pc of await deps.lpm.list<PodCheckpoint>("podcheckpoints")) {
    const mine = ccs.filter((cc) =>
      cc.metadata?.ownerReferences?.some((o) => o.uid === pc.metadata?.uid)
    );
    if (pc.spec.storageClassName === name || mine.some((cc) => classOf(cc) === name)) {
      users.push(`PodCheckpoint ${key(pc)}`);
    }
  }
  for (const cc of ccs) {
    const standalone = !cc.metadata?.ownerReferences?.some((o) => o.kind === "PodCheckpoint");
    if (standalone && classOf(cc) === name) users.push(`ContainerCheckpoint ${key(cc)}`);
  }
  for (const pm of await deps.lpm.list<PodMigration>("podmigrations")) {
    const cls = pm.status?.storageClassName ?? pm.spec.storageClassName;
    if (cls === name && !isTerminal(pm.status?.phase)) users.push(`PodMigration ${key(pm)}`);
  }
  for (const pr of await deps.lpm.list<PodRestore>("podrestores")) {
    if (pr.spec.source.storage?.storageClassName === name && !isTerminal(pr.status?.phase)) {
      users.push(`PodRestore ${key(pr)}`);
    }
  }
  return users.sort();
}

/** A class being deleted: let it go once nothing uses it, else say who does. */
export async function reconcileClassDelete(
  deps: ReconcilerDeps,
  cls: CheckpointStorageClass,
): Promise<ReconcileResult> {
  if (!cls.metadata?.finalizers?.includes(CLASS_FINALIZER)) return;
  const name = cls.metadata.name!;
  const users = await classUsers(deps, name);
  if (users.length === 0) {
    await removeFinalizer(deps.lpm, "checkpointstorageclasses", cls, CLASS_FINALIZER);
    return;
  }
  const shown = users.slice(0, 5).join(", ") +
    (users.length > 5 ? `, and ${users.length - 5} more` : "");
  const message = `CheckpointStorageClass "${name}" is still used by ${users.length} object(s): ` +
    `${shown}. Delete them first (their data goes with them, or stays per deletionPolicy), ` +
    `or remove the finalizer "${CLASS_FINALIZER}" to orphan their data`;
  if (cls.status?.message !== message) {
    await deps.lpm.patchStatus("checkpointstorageclasses", "", name, { ...cls.status, message });
    deps.events.warning(cls, "ClassInUse", message);
  }
  return { requeueAfterMs: 10_000 };
}
