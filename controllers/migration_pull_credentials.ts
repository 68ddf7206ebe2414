/**
 * The registry credentials a target node's pull needs, for a migration.
 * @module
 */
import type { CheckpointStorageClass } from "../api/mod.ts";
import type { ReconcilerDeps } from "./deps.ts";
import { registryAccess, RegistryCredentialsError } from "./checkpoint_data.ts";
import { MigrationFailure } from "./pod_migration_status.ts";

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
