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
import { loadKeyRing } from "./encryption_keys.ts";
import { decryptStream, encryptStream } from "./encryption.ts";

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

/** What {@linkcode validateEncryption} found: a validation and the status text. */
export interface EncryptionValidation extends ValidationResult {
  /** `On (key "<id>")` or `Off`, for `status.encryption`. */
  status: string;
}

/**
 * Checks `spec.encryption` against its Secret's decoded data (undefined: the
 * Secret does not exist): every listed key present and 32 bytes, and a probe
 * encrypted with the first key decrypts. Messages name the field to fix.
 */
export async function validateEncryption(
  spec: CheckpointStorageClassSpec,
  secret: Record<string, string> | undefined,
): Promise<EncryptionValidation> {
  const enc = spec.encryption;
  if (!enc) return { available: true, status: "Off", message: "Encryption is off" };
  const ref = `Secret "${enc.secretRef.namespace}/${enc.secretRef.name}"`;
  if (!secret) {
    return {
      available: false,
      status: "Off",
      message: `spec.encryption.secretRef: ${ref} does not exist`,
    };
  }
  try {
    const ring = await loadKeyRing(enc, secret);
    const probe = crypto.getRandomValues(new Uint8Array(1000));
    const sealed = new Blob([probe]).stream().pipeThrough(encryptStream(ring, { chunkSize: 256 }));
    const back = new Uint8Array(
      await new Response(sealed.pipeThrough(decryptStream(ring))).arrayBuffer(),
    );
    if (back.length !== probe.length || back.some((b, i) => b !== probe[i])) {
      throw new Error("spec.encryption: a probe did not decrypt to what was encrypted");
    }
    const status = `On (key "${ring.active.id}")`;
    return {
      available: true,
      status,
      message: `Encryption on: key "${ring.active.id}" encrypts, ${ring.byId.size} key(s) decrypt`,
    };
  } catch (err) {
    return { available: false, status: "Off", message: (err as Error).message };
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
