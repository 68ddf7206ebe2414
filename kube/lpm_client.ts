/**
 * A small client for lpm's custom resources over {@linkcode KubeRest} (Deno's
 * fetch; no client-node at runtime, see kubeconfig.ts): get (undefined when absent), list, create, merge-patch
 * of metadata (with the resourceVersion as an optimistic lock) and of the
 * status subresource, delete.
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import { KubeRest } from "./rest.ts";
import type { KubeAccess } from "./kubeconfig.ts";

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

/** The collection path of `plural` in `namespace` (cluster-wide when empty). */
function collection(plural: LpmPlural, namespace: string): string {
  const base = `/apis/${LPM_GROUP}/${LPM_VERSION}`;
  return namespace
    ? `${base}/namespaces/${encodeURIComponent(namespace)}/${plural}`
    : `${base}/${plural}`;
}

/** The path of one object (and of its subresource). */
function objectPath(plural: LpmPlural, namespace: string, name: string, sub = ""): string {
  return `${collection(plural, namespace)}/${encodeURIComponent(name)}${sub ? `/${sub}` : ""}`;
}

/** Client for lpm custom resources. */
export class LpmClient {
  readonly #rest: KubeRest;
  readonly #onWrite?: (plural: LpmPlural, obj: LpmObject) => void;

  /**
   * Creates a client from a kubeconfig (lpm's or client-node's) or a
   * {@linkcode KubeRest}. `onWrite` hears every object a create or patch
   * returns (a controller's cache reads its own writes through it).
   */
  constructor(
    kc: KubeAccess | KubeRest,
    opts: { onWrite?: (plural: LpmPlural, obj: LpmObject) => void } = {},
  ) {
    this.#rest = kc instanceof KubeRest ? kc : new KubeRest(kc);
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
      return await this.#rest.get<T>(objectPath(plural, namespace, name));
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
    const res = await this.#rest.get<{ items: T[] }>(collection(plural, namespace), {
      labelSelector: opts.labelSelector,
    });
    return res.items ?? [];
  }

  /** Creates an object; returns it as stored. */
  async create<T extends LpmObject>(plural: LpmPlural, namespace: string, body: T): Promise<T> {
    return this.#wrote(plural, await this.#rest.create<T>(collection(plural, namespace), body));
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
    const path = objectPath(plural, namespace, name);
    return this.#wrote(plural, await this.#rest.patch<T>(path, { metadata }));
  }

  /** Merge-patches the status subresource. */
  async patchStatus<T extends LpmObject>(
    plural: LpmPlural,
    namespace: string,
    name: string,
    status: unknown,
  ): Promise<T> {
    const path = objectPath(plural, namespace, name, "status");
    return this.#wrote(plural, await this.#rest.patch<T>(path, { status }));
  }

  /**
   * Deletes an object; a missing one is not an error. With `uid`, only that
   * incarnation: a newer object of the same name is left alone (409).
   */
  async delete(
    plural: LpmPlural,
    namespace: string,
    name: string,
    opts: { uid?: string } = {},
  ): Promise<void> {
    const body = opts.uid
      ? { apiVersion: "v1", kind: "DeleteOptions", preconditions: { uid: opts.uid } }
      : undefined;
    try {
      await this.#rest.delete(objectPath(plural, namespace, name), body);
    } catch (err) {
      if (apiStatus(err) === 404 || (opts.uid && apiStatus(err) === 409)) return;
      throw err;
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
