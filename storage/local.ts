/** The `local` provider: checkpoints in a host directory of the node. @module */
import { FsStore } from "./_fs_store.ts";
import type { CheckpointStore } from "./backend.ts";

/** Parameters of the `local` provider (`spec.local`). */
export interface LocalStoreOptions {
  /** Absolute host directory; created when missing. */
  path: string;
}

/** Opens a store on a host directory. */
export function createLocalStore(opts: LocalStoreOptions): CheckpointStore & { root: string } {
  return new FsStore({ provider: "local", root: opts.path });
}
