/**
 * Builds a {@linkcode CheckpointStore} from a CheckpointStorageClass, either
 * from a spec and decoded Secret data, or by reading both from the cluster.
 * @module
 */
import type { CheckpointStore } from "./backend.ts";
import {
  type CheckpointStorageClass,
  type CheckpointStorageClassSpec,
  GROUP,
  KINDS,
  VERSION,
} from "../api/mod.ts";
import { StorageError } from "./errors.ts";
import { getProvider, providerNames } from "./providers.ts";

/** Options for {@linkcode createStore}. */
export interface CreateStoreOptions {
  /** The credential Secret's data, already base64-decoded. */
  secret?: Record<string, string>;
}

/** Builds the store a class spec describes; throws `InvalidConfig` for an unknown provider. */
export function createStore(
  spec: CheckpointStorageClassSpec,
  opts: CreateStoreOptions = {},
): CheckpointStore {
  const factory = getProvider(spec.provider);
  if (!factory) {
    throw new StorageError(
      "InvalidConfig",
      `Unknown storage provider "${spec.provider}"; known providers: ${
        providerNames().map((n) => `"${n}"`).join(", ")
      }`,
      { provider: String(spec.provider), location: "(class spec)" },
    );
  }
  return factory(spec, { secret: opts.secret });
}

/** Decodes a Secret's base64 `data` (and plain `stringData`) into strings. */
export function decodeSecretData(
  secret: { data?: Record<string, string>; stringData?: Record<string, string> },
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(secret.data ?? {})) {
    out[k] = new TextDecoder().decode(Uint8Array.from(atob(v), (c) => c.charCodeAt(0)));
  }
  return { ...out, ...secret.stringData };
}

/** Where the CheckpointStorageClass resource lives (default: the `api/` group and version). */
export interface ClassResource {
  /** API group; default `GROUP` ("lpm.my.domain"). */
  group?: string;
  /** API version; default `VERSION` ("v1"). */
  version?: string;
}

/**
 * Reads CheckpointStorageClass `className` and its credential Secret from the
 * cluster and builds the store. Returns the class too (for retention).
 */
export async function loadStoreForClass(
  kubeConfig: import("@kubernetes/client-node").KubeConfig,
  className: string,
  opts: ClassResource = {},
): Promise<{ store: CheckpointStore; storageClass: CheckpointStorageClass }> {
  const k8s = await import("@kubernetes/client-node");
  const custom = kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  const storageClass = await custom.getClusterCustomObject({
    group: opts.group ?? GROUP,
    version: opts.version ?? VERSION,
    plural: KINDS.CheckpointStorageClass.plural,
    name: className,
  }) as CheckpointStorageClass;
  let secret: Record<string, string> | undefined;
  const ref = storageClass.spec.credentialsSecretRef;
  if (ref) {
    const core = kubeConfig.makeApiClient(k8s.CoreV1Api);
    const s = await core.readNamespacedSecret({ name: ref.name, namespace: ref.namespace });
    secret = decodeSecretData(s);
  }
  return { store: createStore(storageClass.spec, { secret }), storageClass };
}
