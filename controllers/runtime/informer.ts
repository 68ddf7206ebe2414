/**
 * Shared informers: a list + watch per resource kept in a local cache, with
 * handlers called on every add, update and delete. Reconcilers read the
 * world themselves; handlers only enqueue keys.
 *
 * The watch is a plain HTTP stream of JSON lines on Deno's fetch: after the
 * first list it follows `resourceVersion`, re-lists when the server says the
 * version is gone (410) or on any error (with backoff), and emits deletes for
 * objects that vanished between lists. `observe` takes the objects this
 * process writes, so reconcilers read their own writes (controllers/cache.ts).
 *
 * Why not client-node's ListWatch/makeInformer (kept by decision):
 * - Its watch runs on client-node's HTTP stack (undici on Deno's node:http2
 *   layer); aborting such a stream crashed the Deno process (a SIGSEGV in a
 *   tokio worker, nghttp2's `find_stream_on_goaway_func` assertion: see
 *   kube/http1.ts and kube/http.ts). Informers abort a watch at every stop
 *   and restart; this one uses Deno's own fetch, where aborting is safe.
 * - Its cache has no read-your-writes (`observe`) and does not refuse an
 *   older version over a newer one, which the reconcilers' cached reads need.
 * - What it would save is ~250 lines, pinned by runtime_kube_test.ts
 *   (list, then add, update and delete from the watch) and by every test
 *   that runs the manager.
 * Revisit if client-node's watch moves to a transport that aborts cleanly
 * under Deno.
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import { type KubeHttp, kubeHttp } from "../../kube/http.ts";
import type { KubeAccess } from "../../kube/kubeconfig.ts";

/** A Kubernetes object as the informer sees it. */
export type KubeObject = k8s.KubernetesObject & { metadata?: k8s.V1ObjectMeta };

/** Event types delivered to handlers. */
export type InformerEvent = "add" | "update" | "delete";

interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: KubeObject & { code?: number; message?: string };
}

class GoneError extends Error {}

/** How long {@linkcode Informer.stop} waits for its watch loop to end. */
const STOP_WAIT_MS = 5000;

function cacheKey(o: KubeObject): string {
  return `${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`;
}

/**
 * True when `a` is an older version than `b`. resourceVersions are etcd
 * revisions, decimal integers (client-go's MutationCache compares them the
 * same way); anything else counts as not older, so the last one seen wins.
 */
function older(a: KubeObject | undefined, b: KubeObject | undefined): boolean {
  const ra = a?.metadata?.resourceVersion;
  const rb = b?.metadata?.resourceVersion;
  if (!ra || !rb || !/^\d+$/.test(ra) || !/^\d+$/.test(rb)) return false;
  return BigInt(ra) < BigInt(rb);
}

/**
 * Drops what no reader needs before an object enters the cache, as
 * controller-runtime's default transform does: `metadata.managedFields`
 * (server-side apply's field owners) is often the largest part of a pod,
 * and 200 migrations' pods, checkpoints and migrations are all cached.
 */
export function trim<T extends KubeObject>(obj: T): T {
  if (obj?.metadata?.managedFields) delete obj.metadata.managedFields;
  return obj;
}

/** A cache of one resource, kept current by a watch. */
export class Informer<T extends KubeObject> {
  readonly #http: KubeHttp;
  readonly #ownsHttp: boolean;
  readonly #selector?: string;
  readonly #onError?: (err: unknown) => void;
  #cache = new Map<string, T>();
  /** Deleted keys and their last version: a late write result must not bring them back. */
  #tombstones = new Map<string, KubeObject>();
  #handlers: ((obj: T, ev: InformerEvent) => void)[] = [];
  #rv = "";
  #synced = false;
  #stopped = true;
  #abort?: AbortController;
  #reader?: ReadableStreamDefaultReader<string>;
  #loop?: Promise<void>;

  /** Creates an informer for the collection at `path` (e.g. `/api/v1/pods`). */
  constructor(
    kc: KubeAccess,
    readonly path: string,
    opts: {
      labelSelector?: string;
      onError?: (err: unknown) => void;
      /** A client shared with other informers (not closed by {@linkcode stop}). */
      http?: KubeHttp;
    } = {},
  ) {
    this.#http = opts.http ?? kubeHttp(kc);
    this.#ownsHttp = !opts.http;
    this.#selector = opts.labelSelector;
    this.#onError = opts.onError;
  }

  /** Registers a handler for add/update/delete. */
  onChange(handler: (obj: T, ev: InformerEvent) => void): void {
    this.#handlers.push(handler);
  }

  /** Lists (filling the cache), then watches in the background. Throws if the first list fails. */
  async start(): Promise<void> {
    this.#stopped = false;
    // Transient answers (429 while a new CRD's storage initializes, 5xx, a
    // connection error) are retried for a while; 401/403/404 fail at once.
    for (let delay = 250;; delay = Math.min(delay * 2, 5000)) {
      try {
        await this.#list();
        break;
      } catch (err) {
        const status = (err as { status?: number }).status;
        if ((status && status !== 429 && status < 500) || delay >= 5000) throw err;
        this.#onError?.(err);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
    this.#synced = true;
    this.#loop = this.#watchLoop();
  }

  /** Stops watching. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort?.abort();
    // Aborting the request alone did not always end a pending read of a busy
    // watch here (Deno 2.9, after ~200 migrations' events): cancel the reader too.
    this.#reader?.cancel().catch(() => {});
    // And never let one stuck stream hold the process's shutdown for long.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#loop,
      new Promise((r) => (timer = setTimeout(r, STOP_WAIT_MS))),
    ]);
    clearTimeout(timer);
    if (this.#ownsHttp) this.#http.close();
  }

  /** True once the first list has filled the cache. */
  get synced(): boolean {
    return this.#synced;
  }

  /** The cached object, or undefined. */
  get(name: string, namespace?: string): T | undefined {
    return this.#cache.get(`${namespace ?? ""}/${name}`);
  }

  /**
   * Takes an object this process just wrote (the API's answer to a create or
   * patch), so the next read sees the write before its watch event arrives.
   * An older version than the cached one, or one of a deleted object, is ignored.
   */
  observe(obj: T): void {
    trim(obj);
    const k = cacheKey(obj);
    const tomb = this.#tombstones.get(k);
    if (tomb && !older(tomb, obj)) return;
    if (older(obj, this.#cache.get(k))) return;
    this.#cache.set(k, obj);
  }

  /** Every cached object, optionally of one namespace. */
  list(namespace?: string): readonly T[] {
    const all = [...this.#cache.values()];
    return namespace ? all.filter((o) => o.metadata?.namespace === namespace) : all;
  }

  #query(extra: Record<string, string>): string {
    const q = new URLSearchParams(extra);
    if (this.#selector) q.set("labelSelector", this.#selector);
    return `${this.path}?${q}`;
  }

  #emit(obj: T, ev: InformerEvent): void {
    for (const h of this.#handlers) {
      try {
        h(obj, ev);
      } catch (err) {
        this.#onError?.(err);
      }
    }
  }

  async #list(): Promise<void> {
    const res = await this.#http.request(this.#query({}));
    if (!res.ok) {
      const body = await res.text();
      throw Object.assign(
        new Error(`Cannot list ${this.path}: ${res.status} ${body.slice(0, 300)}`),
        {
          status: res.status,
        },
      );
    }
    const list = await res.json() as { items: T[]; metadata?: { resourceVersion?: string } };
    const fresh = new Map(list.items.map((o) => [cacheKey(o), trim(o)]));
    for (const [k, old] of this.#cache) {
      if (!fresh.has(k)) {
        this.#cache.delete(k);
        this.#emit(old, "delete");
      }
    }
    this.#tombstones.clear();
    for (const [k, o] of fresh) {
      const old = this.#cache.get(k);
      if (!older(o, old)) this.#cache.set(k, o);
      if (!old) this.#emit(o, "add");
      else if (old.metadata?.resourceVersion !== o.metadata?.resourceVersion) {
        this.#emit(o, "update");
      }
    }
    this.#rv = list.metadata?.resourceVersion ?? "";
  }

  async #watchLoop(): Promise<void> {
    let delay = 500;
    let needList = false;
    while (!this.#stopped) {
      try {
        if (needList) {
          await this.#list();
          needList = false;
        }
        await this.#watchOnce();
        delay = 500;
      } catch (err) {
        if (this.#stopped) return;
        if (!(err instanceof GoneError)) {
          this.#onError?.(err);
          await new Promise((r) => setTimeout(r, delay));
          delay = Math.min(delay * 2, 30_000);
        }
        needList = true;
      }
    }
  }

  async #watchOnce(): Promise<void> {
    this.#abort = new AbortController();
    const res = await this.#http.request(
      this.#query({
        watch: "1",
        resourceVersion: this.#rv,
        allowWatchBookmarks: "true",
        timeoutSeconds: "300",
      }),
      { signal: this.#abort.signal },
    );
    if (res.status === 410) {
      await res.body?.cancel();
      throw new GoneError();
    }
    if (!res.ok || !res.body) {
      const body = await res.text();
      throw new Error(`Cannot watch ${this.path}: ${res.status} ${body.slice(0, 300)}`);
    }
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    this.#reader = reader;
    let buf = "";
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) return; // server timeout: watch again from #rv
        buf += value;
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line) this.#apply(JSON.parse(line) as WatchEvent);
        }
      }
    } finally {
      this.#reader = undefined;
      reader.releaseLock();
    }
  }

  #apply(ev: WatchEvent): void {
    if (ev.type === "ERROR") {
      if (ev.object.code === 410) throw new GoneError();
      throw new Error(
        `Watch of ${this.path} failed: ${ev.object.message ?? JSON.stringify(ev.object)}`,
      );
    }
    const o = trim(ev.object as T);
    if (o.metadata?.resourceVersion) this.#rv = o.metadata.resourceVersion;
    if (ev.type === "BOOKMARK") return;
    const k = cacheKey(o);
    if (ev.type === "DELETED") {
      this.#cache.delete(k);
      // Only the version is compared: not the whole object (up to 1000 of them).
      this.#tombstones.set(k, { metadata: { resourceVersion: o.metadata?.resourceVersion } });
      if (this.#tombstones.size > 1000) {
        this.#tombstones.delete(this.#tombstones.keys().next().value!);
      }
      this.#emit(o, "delete");
    } else {
      const old = this.#cache.get(k);
      this.#tombstones.delete(k);
      // A write of ours may already be here (observe): an older event does not undo it,
      // but handlers still hear of it (they only enqueue keys).
      if (!older(o, old)) this.#cache.set(k, o);
      this.#emit(o, old ? "update" : "add");
    }
  }
}
