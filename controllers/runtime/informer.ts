/**
 * Shared informers: a list + watch per resource kept in a local cache, with
 * handlers called on every add, update and delete. Reconcilers read from the
 * cache; handlers only enqueue keys.
 * @module
 */
import * as k8s from "@kubernetes/client-node";

/** A Kubernetes object as the informer sees it. */
export type KubeObject = k8s.KubernetesObject & { metadata?: k8s.V1ObjectMeta };

/** Event types delivered to handlers. */
export type InformerEvent = "add" | "update" | "delete";

/** A cache of one resource, kept current by a watch. */
export class Informer<T extends KubeObject> {
  readonly #inner: k8s.Informer<T> & k8s.ObjectCache<T>;
  #synced = false;
  #handlers: ((obj: T, ev: InformerEvent) => void)[] = [];
  #stopped = false;

  /**
   * Creates an informer for the collection at `path` (e.g.
   * `/api/v1/pods`), listed with `list`.
   */
  constructor(
    kc: k8s.KubeConfig,
    readonly path: string,
    list: () => Promise<k8s.KubernetesListObject<T>>,
    opts: { labelSelector?: string; onError?: (err: unknown) => void } = {},
  ) {
    this.#inner = k8s.makeInformer(kc, path, list, opts.labelSelector);
    for (const ev of ["add", "update", "delete"] as const) {
      this.#inner.on(ev, (obj) => this.#handlers.forEach((h) => h(obj, ev)));
    }
    // The client's ListWatch stops on a watch error and a failed re-list
    // raises no new event: keep restarting (list + watch) with backoff until
    // it works, unless we were stopped on purpose.
    this.#onError = opts.onError;
    this.#inner.on("error", (err) => {
      opts.onError?.(err);
      this.#restart(1000);
    });
  }

  #onError?: (err: unknown) => void;
  #restarting = false;

  #restart(delayMs: number): void {
    if (this.#stopped || this.#restarting) return;
    this.#restarting = true;
    setTimeout(async () => {
      this.#restarting = false;
      if (this.#stopped) return;
      try {
        await this.#inner.start();
      } catch (err) {
        this.#onError?.(err);
        this.#restart(Math.min(delayMs * 2, 30_000));
      }
    }, delayMs);
  }

  /** Registers a handler for add/update/delete. */
  onChange(handler: (obj: T, ev: InformerEvent) => void): void {
    this.#handlers.push(handler);
  }

  /** Lists, fills the cache, starts watching; resolves once the cache is synced. */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.#inner.start();
    this.#synced = true;
  }

  /** Stops watching. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#inner.stop();
  }

  /** True once the first list has filled the cache. */
  get synced(): boolean {
    return this.#synced;
  }

  /** The cached object, or undefined. */
  get(name: string, namespace?: string): T | undefined {
    return this.#inner.get(name, namespace);
  }

  /** Every cached object, optionally of one namespace. */
  list(namespace?: string): readonly T[] {
    return this.#inner.list(namespace);
  }
}
