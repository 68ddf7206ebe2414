/**
 * A PodRestore of an encrypted checkpoint: the images are ciphertext that the
 * node's containerd cannot unpack, so before the pod is created the target
 * node's agent decrypts and imports each one (PrepareRestore, naming the
 * class whose spec.encryption keys decrypt; see docs/security.md). A failure
 * (no key, wrong key) fails the restore before any pod exists.
 *
 * A deviation from "never hold a reconcile open on an agent": the restore
 * waits here for the prepares (bounded), because PodRestore's phases have no
 * step between importing and creating the pod; a PodRestore is a one-off,
 * not a hot path.
 * @module
 */
import type { CheckpointStorageClass } from "../api/mod.ts";
import { registryAccess } from "./checkpoint_data.ts";
import type { ReconcilerDeps } from "./deps.ts";
import { RestoreFailure } from "./pod_restore_sources.ts";

/** Options of {@linkcode decryptOnTarget}. */
export interface DecryptOnTargetOptions {
  /** The class whose keys decrypt (the PodRestore's holding class). */
  cls?: CheckpointStorageClass;
  /** Idempotency prefix of the agent operations (the PodRestore's uid). */
  operationPrefix: string;
  /** Gives up after this long (default 10 min). */
  timeoutMs?: number;
}

/** Has `node`'s agent decrypt and import the encrypted `images` of `containers`. */
export async function decryptOnTarget(
  deps: ReconcilerDeps,
  node: string,
  images: Record<string, string>,
  containers: string[],
  opts: DecryptOnTargetOptions,
): Promise<void> {
  const cls = opts.cls;
  if (!cls?.spec.encryption) {
    throw new RestoreFailure(
      "DecryptionFailed",
      `The checkpoint is encrypted and ${
        cls ? `CheckpointStorageClass "${cls.metadata?.name}"` : "no CheckpointStorageClass here"
      } has no spec.encryption: this cluster holds no key to decrypt it`,
    );
  }
  const access = cls.spec.registry ? await registryAccess(deps, cls) : {};
  const agent = await deps.agents.forNode(node);
  const deadline = Date.now() + (opts.timeoutMs ?? 600_000);
  for (const c of containers) {
    const id = `${opts.operationPrefix}-decrypt-${c}`.slice(0, 200);
    let op = await agent.prepareRestore({
      operationId: id,
      image: images[c],
      insecure: access.insecure,
      caBundle: access.caCerts?.[0],
      credentials: access.credentials?.username !== undefined
        ? { username: access.credentials.username, password: access.credentials.password ?? "" }
        : undefined,
      storageClassName: cls.metadata?.name,
    });
    while (op.phase !== "Succeeded" && op.phase !== "Failed") {
      if (Date.now() > deadline) {
        throw new RestoreFailure(
          "DecryptionFailed",
          `Node "${node}" did not decrypt "${images[c]}" in time (step ${op.step ?? "?"})`,
        );
      }
      await new Promise((r) => setTimeout(r, 250));
      op = await agent.getOperation(id);
    }
    if (op.phase === "Failed") {
      throw new RestoreFailure(
        "DecryptionFailed",
        `Node "${node}" cannot decrypt the checkpoint image of container "${c}": ${
          op.message ?? "no message"
        }`,
      );
    }
  }
}
