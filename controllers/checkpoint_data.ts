/**
 * A checkpoint's data, as the controller reaches it: its archives and
 * `<container>.checkpoint.json` metadata under `<ns>/<pod>/<id>/` in the
 * class's store, and its checkpoint (and volume) images in the class's
 * registry. Retention and the finalizers remove a checkpoint through
 * {@linkcode removeCheckpoint}: images first (found in the metadata and in
 * what the caller knows), then the archives, the metadata last, so that a
 * removal cut short can be run again and still finds the images.
 *
 * Only images inside the class's own repository are deleted: the metadata
 * is outside data, and a tampered one must not make the controller delete
 * another repository's images with the class's credentials.
 *
 * Manifest deletion leaves the layers in the registry until its garbage
 * collection runs (`registry garbage-collect`, see docs/api.md).
 * @module
 */
import type { CheckpointStorageClass, ContainerCheckpoint } from "../api/mod.ts";
import { LIMITS, readBounded } from "../confine/mod.ts";
import {
  credentialsFor,
  parseReference,
  RegistryClient,
  type RegistryClientOptions,
} from "../oci/mod.ts";
import {
  type CheckpointStore,
  createStore,
  decodeSecretData,
  isStorageError,
} from "../storage/mod.ts";
import { apiMessage, apiStatus } from "../kube/lpm_client.ts";
import type { ReconcilerDeps } from "./deps.ts";

/**
 * Providers whose store lives on the nodes (a hostPath, a claim the agents
 * mount): the controller cannot open it.
 */
export const NODE_PROVIDERS: readonly string[] = ["local", "pvc"];

/** The store and registry of one class, opened by the controller. */
export interface ClassData {
  /** The class's store; undefined for node providers. */
  store?: CheckpointStore;
  /** The class's registry, when it has one. */
  registry?: { client: RegistryClient; host: string; repository: string };
  /**
   * Why the registry could not be opened (its credentials Secret is missing):
   * thrown only when an image has to be deleted, so a checkpoint that never
   * pushed one can still go.
   */
  registryError?: Error;
  /** Releases clients. */
  close(): void;
}

/** Why a class's registry credentials cannot be read; `missing` when the Secret does not exist. */
export class RegistryCredentialsError extends Error {
  /** The Secret does not exist (a terminal failure for whoever needs it). */
  readonly missing: boolean;
  constructor(message: string, missing: boolean) {
    super(message);
    this.name = "RegistryCredentialsError";
    this.missing = missing;
  }
}

/**
 * Registry access settings of a class with a registry: plain HTTP, CAs, and
 * credentials from its Secret (a `.dockerconfigjson` entry for the
 * registry's host, else `username` and `password`). A Secret that is
 * missing or holds no credentials for the registry's host throws a
 * {@linkcode RegistryCredentialsError} naming `registry.credentialsSecretRef`:
 * going on without them would only fail later as a bare 401.
 */
export async function registryAccess(
  deps: ReconcilerDeps,
  cls: CheckpointStorageClass,
): Promise<RegistryClientOptions> {
  const reg = cls.spec.registry!;
  const opts: RegistryClientOptions = { insecure: reg.insecure };
  if (reg.caBundle) opts.caCerts = [reg.caBundle];
  const ref = reg.credentialsSecretRef;
  if (!ref) return opts;
  const field = `registry.credentialsSecretRef of CheckpointStorageClass "${cls.metadata?.name}"`;
  let s: Record<string, string>;
  try {
    s = decodeSecretData(
      await deps.core.readNamespacedSecret({ name: ref.name, namespace: ref.namespace }),
    );
  } catch (err) {
    const missing = apiStatus(err) === 404;
    throw new RegistryCredentialsError(
      `Cannot read the registry credentials: Secret "${ref.namespace}/${ref.name}" (${field}) ` +
        (missing ? "does not exist" : `could not be read: ${apiMessage(err)}`),
      missing,
    );
  }
  const host = reg.repository.split("/")[0];
  opts.credentials = s[".dockerconfigjson"]
    ? credentialsFor(s[".dockerconfigjson"], host)
    : s.username !== undefined
    ? { username: s.username, password: s.password ?? "" }
    : undefined;
  if (!opts.credentials) {
    throw new RegistryCredentialsError(
      `Secret "${ref.namespace}/${ref.name}" (${field}) holds no credentials for "${host}": ` +
        'it needs "username" and "password", or a ".dockerconfigjson" with an entry for the host',
      true,
    );
  }
  return opts;
}

/** Opens the store (unless the provider is a node one) and the registry of `cls`. */
export async function openClassData(
  deps: ReconcilerDeps,
  cls: CheckpointStorageClass,
): Promise<ClassData> {
  let store: CheckpointStore | undefined;
  if (!NODE_PROVIDERS.includes(cls.spec.provider)) {
    const ref = cls.spec.credentialsSecretRef;
    const secret = ref
      ? decodeSecretData(
        await deps.core.readNamespacedSecret({ name: ref.name, namespace: ref.namespace }),
      )
      : undefined;
    store = createStore(cls.spec, { secret });
  }
  let registry: ClassData["registry"];
  let registryError: Error | undefined;
  const reg = cls.spec.registry;
  if (reg?.repository) {
    const [host, ...path] = reg.repository.split("/");
    try {
      const opts = await registryAccess(deps, cls);
      registry = { client: new RegistryClient(host, opts), host, repository: path.join("/") };
    } catch (err) {
      if (!(err instanceof RegistryCredentialsError && err.missing)) throw err;
      registryError = err;
    }
  }
  return {
    store,
    registry,
    registryError,
    close() {
      store?.close?.();
      registry?.client.close();
    },
  };
}

/** The image references (`repo@sha256:...`) a checkpoint's metadata names. */
export async function imagesInMetadata(store: CheckpointStore, keys: string[]): Promise<string[]> {
  const refs: string[] = [];
  for (const key of keys) {
    if (!key.endsWith(".checkpoint.json")) continue;
    let doc: { image?: { reference?: unknown }; volumes?: { image?: unknown } };
    try {
      const bytes = await readBounded(await store.get(key), LIMITS.jsonBytes, `metadata "${key}"`);
      doc = JSON.parse(new TextDecoder().decode(bytes));
    } catch (err) {
      // The store failing is retried; metadata that is gone, too big or not JSON names no image.
      if (isStorageError(err) && !isStorageError(err, "NotFound")) throw err;
      continue;
    }
    for (const r of [doc?.image?.reference, doc?.volumes?.image]) {
      if (typeof r === "string" && r) refs.push(r);
    }
  }
  return refs;
}

/** What {@linkcode deleteImages} did. */
export interface ImageDeletion {
  /** References whose manifest was deleted. */
  deleted: string[];
  /** References the registry no longer had. */
  missing: string[];
  /** References refused: not by digest, or outside the class's repository. */
  refused: string[];
}

/** Deletes the manifests of `refs` that live in the class's repository. */
export async function deleteImages(
  data: ClassData,
  refs: Iterable<string>,
): Promise<ImageDeletion> {
  const out: ImageDeletion = { deleted: [], missing: [], refused: [] };
  const unique = new Set(refs);
  if (unique.size && data.registryError) throw data.registryError;
  for (const ref of unique) {
    let parsed;
    try {
      parsed = parseReference(ref);
    } catch {
      out.refused.push(ref);
      continue;
    }
    const reg = data.registry;
    if (
      !reg || !parsed.digest || parsed.host !== reg.host || parsed.repository !== reg.repository
    ) {
      out.refused.push(ref);
      continue;
    }
    const had = await reg.client.deleteManifest(parsed.repository, parsed.digest);
    (had ? out.deleted : out.missing).push(ref);
  }
  return out;
}

/** What {@linkcode removeCheckpoint} did. */
export interface CheckpointRemoval {
  /** Store objects deleted. */
  objects: number;
  /** Images deleted, missing and refused. */
  images: ImageDeletion;
}

/**
 * Removes the checkpoint under `prefix` (`<ns>/<pod>/<id>/`): the images its
 * metadata names and `knownImages` (from its objects' status), then its
 * objects, metadata last. Without a store only the images go.
 */
export async function removeCheckpoint(
  data: ClassData,
  prefix: string,
  opts: { knownImages?: string[]; signal?: AbortSignal } = {},
): Promise<CheckpointRemoval> {
  if (!/^[^/]+\/[^/]+\/[^/]+\/$/.test(prefix)) {
    throw new Error(`Cannot remove checkpoint "${prefix}": not a <ns>/<pod>/<id>/ prefix`);
  }
  const keys = data.store
    ? (await Array.fromAsync(data.store.list(prefix, { signal: opts.signal }))).map((o) => o.key)
    : [];
  const fromMeta = data.store ? await imagesInMetadata(data.store, keys) : [];
  const images = await deleteImages(data, [...fromMeta, ...opts.knownImages ?? []]);
  keys.sort((a, b) => Number(a.endsWith(".json")) - Number(b.endsWith(".json")));
  for (const key of keys) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    await data.store!.delete(key);
  }
  return { objects: keys.length, images };
}

/** What {@linkcode deleteOnNodes} did. */
export interface NodeDeletion {
  /** Archive keys the nodes' agents deleted. */
  deleted: string[];
  /** Archive keys whose operation the node's agent no longer knows: they may remain. */
  unknown: string[];
}

/**
 * Deletes the archives of `ccs` from a store that lives on the nodes (`local`,
 * `pvc`): only the agent of the node that stored one reaches it, through its
 * operation (DeleteCheckpoint with `deleteStored`). An unreachable agent
 * throws, so the finalizer is retried; an operation the agent forgot is
 * reported, since nothing else could delete its archive.
 */
export async function deleteOnNodes(
  deps: ReconcilerDeps,
  ccs: ContainerCheckpoint[],
): Promise<NodeDeletion> {
  const out: NodeDeletion = { deleted: [], unknown: [] };
  for (const cc of ccs) {
    const { archive, operationId, nodeName } = cc.status ?? {};
    if (!archive?.key || !operationId || !nodeName) continue;
    const agent = await deps.agents.forNode(nodeName);
    if (!agent.deleteCheckpoint) {
      throw new Error(
        `Cannot delete "${archive.key}" on node "${nodeName}": its agent cannot delete checkpoints`,
      );
    }
    try {
      await agent.deleteCheckpoint(operationId, { deleteStored: true });
      out.deleted.push(archive.key);
    } catch (err) {
      if (!/not found/i.test((err as Error).message)) throw err;
      out.unknown.push(`${archive.key} (node "${nodeName}")`);
    }
  }
  return out;
}

/** The part of a deletion Event that says what happened on the nodes. */
export function nodeDeletionNote(cls: CheckpointStorageClass, d: NodeDeletion): string {
  return `; deleted ${d.deleted.length} archive(s) on the nodes' "${cls.spec.provider}" storage` +
    (d.unknown.length ? `; the agents no longer know ${d.unknown.join(", ")}: left in place` : "");
}
