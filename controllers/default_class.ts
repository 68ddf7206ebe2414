/**
 * The default CheckpointStorageClass, for a PodCheckpoint or
 * ContainerCheckpoint that names none (the original project's manifests
 * never do): the single class with `spec.default: true`.
 * @module
 */
import type { CheckpointStorageClass } from "../api/mod.ts";
import type { ReconcilerDeps } from "./deps.ts";

/**
 * The classes marked default (and not being deleted). Read from the cache;
 * unless exactly one, confirmed from the API: a class applied a moment ago
 * may not be cached yet, and "none" or "several" fails a checkpoint.
 */
export async function defaultClasses(deps: ReconcilerDeps): Promise<CheckpointStorageClass[]> {
  const pick = (cs: CheckpointStorageClass[]) =>
    cs.filter((c) => c.spec.default && !c.metadata?.deletionTimestamp);
  const cached = pick(await deps.cache.list<CheckpointStorageClass>("checkpointstorageclasses"));
  if (cached.length === 1) return cached;
  return pick(await deps.lpm.list<CheckpointStorageClass>("checkpointstorageclasses"));
}

/** The default class's name, or why there is none to use. */
export async function defaultClassName(
  deps: ReconcilerDeps,
): Promise<{ name: string } | { problem: string }> {
  const defaults = await defaultClasses(deps);
  if (defaults.length === 1) return { name: defaults[0].metadata!.name! };
  return {
    problem: defaults.length === 0
      ? "spec.storageClassName is empty and no CheckpointStorageClass is marked default"
      : `spec.storageClassName is empty and more than one CheckpointStorageClass is marked default (${
        defaults.map((c) => `"${c.metadata?.name}"`).join(", ")
      })`,
  };
}
