/**
 * A migration's pulls on its target node (the checkpoint images before the
 * restore, pre-copy's rounds before the freeze): the target's agent, the
 * class's registry settings and credentials, one pre-pull operation per
 * image.
 * @module
 */
import type { CheckpointStorageClass } from "../api/mod.ts";
import type { NodeAgent } from "../contract/agent.ts";
import { apiMessage } from "../kube/lpm_client.ts";
import type { ReconcilerDeps } from "./deps.ts";
import { registryAccess, RegistryCredentialsError } from "./checkpoint_data.ts";
import { MigrationFailure, type MigrationStatus } from "./pod_migration_status.ts";

/** What a pull on the target needs, resolved once per reconcile. */
export interface TargetPull {
  /** The target node and its agent. */
  node: string;
  agent: NodeAgent;
  /** The migration's class and its registry settings. */
  storageClassName?: string;
  registry?: NonNullable<CheckpointStorageClass["spec"]["registry"]>;
  credentials?: { username: string; password: string };
}

/** The target's agent and the class's registry access; an unreachable agent is retried. */
export async function targetPull(
  deps: ReconcilerDeps,
  status: MigrationStatus,
  node: string,
): Promise<TargetPull> {
  let agent: NodeAgent;
  try {
    agent = await deps.agents.forNode(node);
  } catch (err) {
    throw new Error(`Cannot reach the agent of target node "${node}": ${apiMessage(err)}`);
  }
  const cls = await deps.cache.get<CheckpointStorageClass>(
    "checkpointstorageclasses",
    "",
    status.storageClassName ?? "",
  );
  const registry = cls?.spec.registry;
  const credentials = registry?.repository && cls ? await pullCredentials(deps, cls) : undefined;
  return { node, agent, storageClassName: status.storageClassName, registry, credentials };
}

/**
 * Starts or follows the target's pull of `image` (operation `operationId`):
 * true once it is there; a failed pull fails the migration.
 */
export async function pullOnTarget(
  p: TargetPull,
  operationId: string,
  image: string,
): Promise<boolean> {
  const op = await p.agent.prepareRestore({
    operationId,
    image,
    insecure: p.registry?.insecure,
    caBundle: p.registry?.caBundle,
    credentials: p.credentials,
    storageClassName: p.storageClassName,
  });
  if (op.phase === "Failed") {
    throw new MigrationFailure(
      "ImagePullFailed",
      `Target node "${p.node}" cannot pull ${image}: ${op.message ?? "no message"}`,
    );
  }
  return op.phase === "Succeeded";
}

/**
 * The credentials the target's pre-pull needs (the class's
 * `registry.credentialsSecretRef`); a Secret that is missing or empty fails
 * the migration, other read errors are retried.
 */
export async function pullCredentials(
  deps: ReconcilerDeps,
  cls: CheckpointStorageClass,
): Promise<{ username: string; password: string } | undefined> {
  try {
    const c = (await registryAccess(deps, cls)).credentials;
    return c?.username !== undefined
      ? { username: c.username, password: c.password ?? "" }
      : undefined;
  } catch (err) {
    if (err instanceof RegistryCredentialsError && err.missing) {
      throw new MigrationFailure("RegistryCredentials", err.message);
    }
    throw err;
  }
}
