/**
 * A small client for lpm's custom resources over @kubernetes/client-node's
 * CustomObjectsApi: get (undefined when absent), list, create, merge-patch
 * of metadata (with the resourceVersion as an optimistic lock) and of the
 * status subresource, delete.
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import { makeApiClient } from "./api_requests.ts";

/** The API group of every lpm kind. */
export const LPM_GROUP = "lpm.my.domain";
/** The served version. */
export const LPM_VERSION = "v1";

/** Plural resource names of lpm kinds. */
export type LpmPlural =
  | "podmigrations"
  | "podcheckpoints"
  | "containercheckpoints"
  | "checkpointstorageclasses"
  | "podrestores";

/** Minimal shape of any lpm object. */
export interface LpmObject {
  apiVersion?: string;
  kind?: string;
  metadata?: k8s.V1ObjectMeta;
  spec?: unknown;
  status?: unknown;
}

/** The HTTP status of an API error, if it is one. */
export function apiStatus(err: unknown): number | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === "number" ? code : undefined;
}

/** The API server's message inside an API error, else the error's own message. */
export function apiMessage(err: unknown): string {
  const body = (err as { body?: unknown })?.body;
  if (typeof body === "string") {
    try {
      const parsed = JSON.parse(body);
      if (parsed?.message) return parsed.message;
    } catch {
      // not JSON
    }
  }
  return err instanceof Error ? err.message.split("\n")[0] : String(err);
}

const mergePatch = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);

/** Client for lpm custom resources. */
export class LpmClient {
  readonly #api: k8s.CustomObjectsApi;
  readonly #onWrite?: (plural: LpmPlural, obj: LpmObject) => void;

  /**
   * Creates a client from a KubeConfig. `onWrite` hears every object a create
   * or patch returns (a controller's cache reads its own writes through it).
   */
  constructor(
    kc: k8s.KubeConfig,
    opts: { onWrite?: (plural: LpmPlural, obj: LpmObject) => void } = {},
  ) {
    this.#api = makeApiClient(kc, k8s.CustomObjectsApi);
    this.#onWrite = opts.onWrite;
  }

  #wrote<T extends LpmObject>(plural: LpmPlural, obj: T): T {
    this.#onWrite?.(plural, obj);
    return obj;
  }

  /** Reads an object; undefined when it does not exist. */
  async get<T extends LpmObject>(
    plural: LpmPlural,
    namespace: string,
    name: string,
  ): Promise<T | undefined> {
    try {
      const base = { group: LPM_GROUP, version: LPM_VERSION, plural, name };
      return (namespace
        ? await this.#api.getNamespacedCustomObject({ ...base, namespace })
        : await this.#api.getClusterCustomObject(base)) as T;
    } catch (err) {
      if (apiStatus(err) === 404) return undefined;
      throw err;
    }
  }

  /** Lists objects (all namespaces when `namespace` is empty). */
  async list<T extends LpmObject>(
    plural: LpmPlural,
    namespace = "",
    opts: { labelSelector?: string } = {},
  ): Promise<T[]> {
    const base = {
      group: LPM_GROUP,
      version: LPM_VERSION,
      plural,
      labelSelector: opts.labelSelector,
    };
    const res =
      (namespace
        ? await this.#api.listNamespacedCustomObject({ ...base, namespace })
        : await this.#api.listClusterCustomObject(base)) as { items: T[] };
    return res.items;
  }

  /** Lists with the raw response (for informers: needs metadata.resourceVersion). */
  async listRaw(plural: LpmPlural): Promise<k8s.KubernetesListObject<k8s.KubernetesObject>> {
    return await this.#api.listClusterCustomObject({
      group: LPM_GROUP,
      version: LPM_VERSION,
      plural,
    }) as k8s.KubernetesListObject<k8s.KubernetesObject>;
  }

  /** Creates an object; returns it as stored. */
  async create<T extends LpmObject>(plural: LpmPlural, namespace: string, body: T): Promise<T> {
    const base = { group: LPM_GROUP, version: LPM_VERSION, plural, body };
    return this.#wrote(
      plural,
      (namespace
        ? await this.#api.createNamespacedCustomObject({ ...base, namespace })
        : await this.#api.createClusterCustomObject(base)) as T,
    );
  }

  /**
   * Merge-patches metadata (finalizers, annotations, labels). With
   * `resourceVersion` the patch fails with 409 if the object changed meanwhile.
   */
  async patchMetadata<T extends LpmObject>(
    plural: LpmPlural,
    namespace: string,
    name: string,
    metadata: Record<string, unknown>,
  ): Promise<T> {
    const base = { group: LPM_GROUP, version: LPM_VERSION, plural, name, body: { metadata } };
    return this.#wrote(
      plural,
      (namespace
        ? await this.#api.patchNamespacedCustomObject({ ...base, namespace }, mergePatch)
        : await this.#api.patchClusterCustomObject(base, mergePatch)) as T,
    );
  }

  /** Merge-patches the status subresource. */
  async patchStatus<T extends LpmObject>(
    plural: LpmPlural,
    namespace: string,
    name: string,
    status: unknown,
  ): Promise<T> {
    const base = { group: LPM_GROUP, version: LPM_VERSION, plural, name, body: { status } };
    return this.#wrote(
      plural,
      (namespace
        ? await this.#api.patchNamespacedCustomObjectStatus({ ...base, namespace }, mergePatch)
        : await this.#api.patchClusterCustomObjectStatus(base, mergePatch)) as T,
    );
  }

  /** Deletes an object; a missing one is not an error. */
  async delete(plural: LpmPlural, namespace: string, name: string): Promise<void> {
    try {
      const base = { group: LPM_GROUP, version: LPM_VERSION, plural, name };
      if (namespace) await this.#api.deleteNamespacedCustomObject({ ...base, namespace });
      else await this.#api.deleteClusterCustomObject(base);
    } catch (err) {
      if (apiStatus(err) !== 404) throw err;
    }
  }
}

/**
 * Creates `body` (whose name is deterministic); when it exists already (a
 * retry, or a read from a cache that had not seen it yet) returns the stored
 * one: AlreadyExists is success, and no second object is ever made.
 */
export async function createOrGet<T extends LpmObject>(
  c: LpmClient,
  plural: LpmPlural,
  namespace: string,
  body: T,
): Promise<T> {
  try {
    return await c.create(plural, namespace, body);
  } catch (err) {
    if (apiStatus(err) !== 409) throw err;
    const existing = await c.get<T>(plural, namespace, body.metadata!.name!);
    if (!existing) throw err;
    return existing;
  }
}

/** Adds `finalizer` to the object's finalizers (optimistic lock on resourceVersion). */
export async function ensureFinalizer(
  c: LpmClient,
  plural: LpmPlural,
  obj: LpmObject,
  finalizer: string,
): Promise<LpmObject> {
  const fins = obj.metadata?.finalizers ?? [];
  if (fins.includes(finalizer)) return obj;
  return await c.patchMetadata(plural, obj.metadata?.namespace ?? "", obj.metadata!.name!, {
    finalizers: [...fins, finalizer],
    resourceVersion: obj.metadata?.resourceVersion,
  });
}

/** Removes `finalizer` from the object's finalizers (optimistic lock). */
export async function removeFinalizer(
  c: LpmClient,
  plural: LpmPlural,
  obj: LpmObject,
  finalizer: string,
): Promise<void> {
  const fins = obj.metadata?.finalizers ?? [];
  if (!fins.includes(finalizer)) return;
  try {
    await c.patchMetadata(plural, obj.metadata?.namespace ?? "", obj.metadata!.name!, {
      finalizers: fins.filter((f) => f !== finalizer),
      resourceVersion: obj.metadata?.resourceVersion,
    });
  } catch (err) {
    if (apiStatus(err) !== 404) throw err;
  }
}

/** An owner reference to `owner` that makes it the controller (for garbage collection). */
export function controllerRef(owner: LpmObject): k8s.V1OwnerReference {
  return {
    apiVersion: owner.apiVersion ?? `${LPM_GROUP}/${LPM_VERSION}`,
    kind: owner.kind!,
    name: owner.metadata!.name!,
    uid: owner.metadata!.uid!,
    controller: true,
    blockOwnerDeletion: true,
  };
}
