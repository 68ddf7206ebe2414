/**
 * The reconcilers' reads: from the manager's informer caches, as
 * controller-runtime's client reads; writes go to the API server (`deps.lpm`,
 * `deps.core`), and what a write returns goes into the cache at once.
 *
 * Two rules keep the reads level-based and correct:
 * - A miss is never trusted: `get`, `pod` and `node` confirm it with a GET,
 *   because a watch may not have delivered an object someone created a moment
 *   ago (a pod created just before its PodMigration, a class just applied). So
 *   no "does not exist" failure and no create comes from a stale cache.
 * - Read your writes: the LpmClient of the deps reports every object it
 *   creates or patches ({@linkcode InformerCache.observe}), so the next
 *   reconcile reads its own last status, not the one before it. Children are
 *   created with deterministic names and an AlreadyExists is taken as
 *   success, so a create is never repeated into a second object.
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import type { CoreClient } from "../kube/core_client.ts";
import { apiStatus, type LpmClient, type LpmObject, type LpmPlural } from "../kube/lpm_client.ts";
import type { Informer, KubeObject } from "./runtime/informer.ts";

/** What reconcilers read. Objects returned are copies: editing them changes nothing. */
export interface Cache {
  /**
   * An lpm object, or undefined when the API server has none. A cache miss
   * is confirmed with a GET unless `confirmMiss` is false (before a create
   * whose AlreadyExists is handled: the create is the confirmation).
   */
  get<T extends LpmObject>(
    plural: LpmPlural,
    namespace: string,
    name: string,
    opts?: ReadOptions,
  ): Promise<T | undefined>;
  /** lpm objects as the cache holds them (all namespaces when `namespace` is empty). */
  list<T extends LpmObject>(
    plural: LpmPlural,
    namespace?: string,
    opts?: { labelSelector?: string },
  ): Promise<T[]>;
  /** A pod, or undefined when the API server has none (a miss confirmed as in `get`). */
  pod(namespace: string, name: string, opts?: ReadOptions): Promise<k8s.V1Pod | undefined>;
  /** A node, or undefined when the API server has none. */
  node(name: string): Promise<k8s.V1Node | undefined>;
  /** Every node. */
  nodes(): Promise<k8s.V1Node[]>;
  /** Every pod (for what is requested on each node). */
  pods(): Promise<k8s.V1Pod[]>;
}

/** How a cache read treats a miss. */
export interface ReadOptions {
  /** Confirm a miss with a GET (default true). */
  confirmMiss?: boolean;
}

/** The API clients a cache falls back to. */
export interface CacheApi {
  lpm: LpmClient;
  core: CoreClient;
}

async function orUndefined<T>(read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (err) {
    if (apiStatus(err) === 404) return undefined;
    throw err;
  }
}

/** A cache that is no cache: every read is a request (tools and tests without informers). */
export function apiCache(api: CacheApi): Cache {
  return {
    get: (plural, namespace, name) => api.lpm.get(plural, namespace, name),
    list: (plural, namespace, opts) => api.lpm.list(plural, namespace, opts),
    pod: (namespace, name) => orUndefined(() => api.core.readNamespacedPod({ name, namespace })),
    node: (name) => orUndefined(() => api.core.readNode({ name })),
    nodes: async () => (await api.core.listNode()).items,
    pods: async () => (await api.core.listPodForAllNamespaces()).items,
  };
}

/** True when `labels` match a selector of `key=value` and `key` terms, comma separated. */
export function matchesSelector(labels: Record<string, string> = {}, selector = ""): boolean {
  return selector.split(",").map((t) => t.trim()).filter(Boolean).every((t) => {
    const [k, v] = t.split("=").map((x) => x.trim());
    return v === undefined ? k in labels : labels[k] === v;
  });
}

/** The informers a {@linkcode InformerCache} reads. */
export interface CacheInformers {
  lpm: Record<LpmPlural, Informer<KubeObject>>;
  pods: Informer<k8s.V1Pod>;
  nodes: Informer<k8s.V1Node>;
}

/** Reads from informers; confirms misses with the API. */
export class InformerCache implements Cache {
  /** Creates a cache over started (synced) informers. */
  constructor(readonly informers: CacheInformers, readonly api: CacheApi) {}

  /** Takes what a write of `plural` returned (read your writes). */
  observe(plural: LpmPlural, obj: LpmObject): void {
    this.informers.lpm[plural].observe(obj as KubeObject);
  }

  async get<T extends LpmObject>(
    plural: LpmPlural,
    namespace: string,
    name: string,
    opts: ReadOptions = {},
  ): Promise<T | undefined> {
    const hit = this.informers.lpm[plural].get(name, namespace || undefined);
    if (hit) return structuredClone(hit) as T;
    if (opts.confirmMiss === false) return undefined;
    const o = await this.api.lpm.get<T>(plural, namespace, name);
    if (o) this.observe(plural, o);
    return o;
  }

  list<T extends LpmObject>(
    plural: LpmPlural,
    namespace = "",
    opts: { labelSelector?: string } = {},
  ): Promise<T[]> {
    const all = this.informers.lpm[plural].list(namespace || undefined)
      .filter((o) => matchesSelector(o.metadata?.labels, opts.labelSelector));
    return Promise.resolve(structuredClone(all) as T[]);
  }

  async pod(
    namespace: string,
    name: string,
    opts: ReadOptions = {},
  ): Promise<k8s.V1Pod | undefined> {
    const hit = this.informers.pods.get(name, namespace);
    if (hit) return structuredClone(hit);
    if (opts.confirmMiss === false) return undefined;
    const p = await orUndefined(() => this.api.core.readNamespacedPod({ name, namespace }));
    if (p) this.informers.pods.observe(p);
    return p;
  }

  async node(name: string): Promise<k8s.V1Node | undefined> {
    const hit = this.informers.nodes.get(name);
    if (hit) return structuredClone(hit);
    const n = await orUndefined(() => this.api.core.readNode({ name }));
    if (n) this.informers.nodes.observe(n);
    return n;
  }

  nodes(): Promise<k8s.V1Node[]> {
    return Promise.resolve(structuredClone([...this.informers.nodes.list()]));
  }

  pods(): Promise<k8s.V1Pod[]> {
    // Read-only use (sums of requests): no copy of every pod.
    return Promise.resolve([...this.informers.pods.list()]);
  }
}
