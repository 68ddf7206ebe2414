/**
 * The CheckpointStorageClass health probe: write, read back and delete a
 * small object, and report Available/Unavailable with a message that says
 * what to fix. Also the pure check that at most one class is the default.
 * @module
 */
import type { CheckpointStore } from "./backend.ts";
import type { CheckpointStorageClassSpec } from "../api/mod.ts";
import { describeCause, isStorageError } from "./errors.ts";
import { createStore } from "./factory.ts";

/** Outcome of a validation. */
export interface ValidationResult {
  /** True when the probe round trip worked. */
  available: boolean;
  /** What was checked, or what failed and how to fix it. */
  message: string;
}

/** Options for {@linkcode validateStore}. */
export interface ValidateOptions {
  /** Gives up after this long (default 30 s). */
  timeoutMs?: number;
}

/** Probes a store: put, stat, get (digest-checked) and delete of a small random object. */
export async function validateStore(
  store: CheckpointStore,
  opts: ValidateOptions = {},
): Promise<ValidationResult> {
  const key = `lpm-validation/probe/${Date.now()}-${crypto.randomUUID().slice(0, 8)}/probe.bin`;
  const data = crypto.getRandomValues(new Uint8Array(4096));
  const signal = AbortSignal.timeout(opts.timeoutMs ?? 30_000);
  const t0 = performance.now();
  let stored = false;
  try {
    const info = await store.put(key, new Blob([data]).stream(), { signal, size: data.length });
    stored = true;
    const st = await store.stat(key);
    if (!st || st.sha256 !== info.sha256) {
      return {
        available: false,
        message: `Probe "${key}" at "${store.location}" was written but stat does not return it`,
      };
    }
    const back = new Uint8Array(await new Response(await store.get(key, { signal })).arrayBuffer());
    if (back.length !== data.length) {
      return {
        available: false,
        message:
          `Probe "${key}" at "${store.location}" read back ${back.length} bytes of ${data.length}`,
      };
    }
    await store.delete(key);
    stored = false;
    const ms = Math.round(performance.now() - t0);
    return {
      available: true,
      message:
        `Wrote, read back (sha256 verified) and deleted probe "${key}" at "${store.location}" in ${ms} ms`,
    };
  } catch (err) {
    if (signal.aborted && !isStorageError(err)) {
      return {
        available: false,
        message: `Probe at "${store.location}" timed out after ${
          opts.timeoutMs ?? 30_000
        } ms [provider ${store.provider}]`,
      };
    }
    return { available: false, message: describeCause(err) };
  } finally {
    if (stored) await store.delete(key).catch(() => {});
  }
}

/**
 * Builds the class's store and probes it; a spec or Secret that cannot even
 * build a store is reported as Unavailable with the reason.
 */
export async function validateStorageClass(
  spec: CheckpointStorageClassSpec,
  secret?: Record<string, string>,
  opts: ValidateOptions = {},
): Promise<ValidationResult> {
  let store: CheckpointStore;
  try {
    store = createStore(spec, { secret });
  } catch (err) {
    return { available: false, message: describeCause(err) };
  }
  try {
    return await validateStore(store, opts);
  } finally {
    store.close?.();
  }
}

/** What {@linkcode defaultClassConflicts} found. */
export interface DefaultClassReport {
  /** Names of the classes marked default, sorted. */
  defaults: string[];
  /** True when more than one class is marked default. */
  conflict: boolean;
  /** A message for status/Events, empty when there is no conflict. */
  message: string;
}

/** Reports whether more than one class claims `spec.default: true`. */
export function defaultClassConflicts(
  classes: readonly { metadata: { name?: string }; spec: { default?: boolean } }[],
): DefaultClassReport {
  const defaults = classes.filter((c) => c.spec.default === true).map((c) => c.metadata.name ?? "")
    .sort();
  const conflict = defaults.length > 1;
  return {
    defaults,
    conflict,
    message: conflict
      ? `${defaults.length} CheckpointStorageClasses are marked default (${
        defaults.map((d) => `"${d}"`).join(", ")
      }); ` +
        "set spec.default on exactly one of them"
      : "",
  };
}
