/**
 * The `pvc` provider: checkpoints on a mounted shared filesystem (an NFS
 * ReadWriteMany PersistentVolumeClaim). The claim must already be mounted at
 * `mountPath`; `subPath` inside it is created when missing.
 * @module
 */
import { FsStore } from "./_fs_store.ts";
import type { CheckpointStore } from "./backend.ts";

/** Parameters of the `pvc` provider (`spec.pvc`). */
export interface PvcStoreOptions {
  /** The PersistentVolumeClaim's name (for messages). */
  claimName: string;
  /** Where the claim is mounted in the agent's pod; must exist. */
  mountPath: string;
  /** Directory inside the volume. */
  subPath?: string;
}

/** Opens a store on a mounted volume. */
export function createPvcStore(opts: PvcStoreOptions): CheckpointStore & { root: string } {
  const mount = opts.mountPath.replace(/\/+$/, "");
  const sub = (opts.subPath ?? "").replace(/^\/+|\/+$/g, "");
  if (sub.split("/").includes("..")) {
    throw new Error(
      `Invalid subPath "${opts.subPath}" of claim "${opts.claimName}": ".." is not allowed`,
    );
  }
  const store = new FsStore({
    provider: "pvc",
    root: sub ? `${mount}/${sub}` : mount,
    location: `pvc "${opts.claimName}" at ${sub ? `${mount}/${sub}` : mount}`,
    requiredDir: mount,
  });
  return store;
}
