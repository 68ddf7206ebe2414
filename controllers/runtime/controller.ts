/**
 * A controller: a work queue of object keys and a bounded pool of workers
 * that call a level-based reconcile function, retry failures with per-key
 * backoff, requeue on request, and stop retrying on a terminal error.
 * @module
 */
import { WorkQueue, type WorkQueueOptions } from "./workqueue.ts";
import type { ControllerMetrics } from "./metrics.ts";
import { Logger } from "../../base/log.ts";

/** What a reconcile asks for next: nothing, or another look after a delay. */
export type ReconcileResult = { requeueAfterMs?: number } | void;

/**
 * An error that retrying cannot fix (bad input, a policy refusal). The
 * reconciler is expected to have recorded it on the object's status; the
 * controller logs it and does not retry.
 */
export class TerminalError extends Error {
  /** Creates a terminal error. */
  constructor(message: string) {
    super(message);
    this.name = "TerminalError";
  }
}

/** A reconcile function: reads the world for `key`, moves it one step toward the spec. */
export type Reconcile = (key: string, log: Logger) => Promise<ReconcileResult>;

/** Options for {@linkcode Controller}. */
export interface ControllerOptions {
  /** Name in logs and metrics, e.g. "podmigration". */
  name: string;
  /** The reconcile function. */
  reconcile: Reconcile;
  /** Concurrent workers (keys in flight). Default 2. */
  workers?: number;
  /** Queue tuning. */
  queue?: WorkQueueOptions;
  /** Metrics to record into. */
  metrics?: ControllerMetrics;
  /** Base logger. */
  logger?: Logger;
}

/** A running set of workers over one queue. */
export class Controller {
  /** The controller's queue. */
  readonly queue: WorkQueue;
  readonly #opts: ControllerOptions;
  readonly #log: Logger;
  #workers: Promise<void>[] = [];

  /** Creates a controller; call {@linkcode start} to run it. */
  constructor(opts: ControllerOptions) {
    this.#opts = opts;
    this.queue = new WorkQueue(opts.queue);
    this.#log = (opts.logger ?? new Logger()).with({ controller: opts.name });
  }

  /** The controller's name. */
  get name(): string {
    return this.#opts.name;
  }

  /** Queues a key (`namespace/name`, or `name` for cluster-scoped objects). */
  enqueue(key: string): void {
    this.queue.add(key);
    this.#opts.metrics?.queueDepth.set({ controller: this.name }, this.queue.len());
  }

  /** Starts the workers. */
  start(): void {
    const n = this.#opts.workers ?? 2;
    for (let i = 0; i < n; i++) this.#workers.push(this.#work());
  }

  /** Stops taking keys and waits for in-flight reconciles to finish. */
  async stop(): Promise<void> {
    this.queue.shutDown();
    await Promise.all(this.#workers);
    this.#workers = [];
  }

  async #work(): Promise<void> {
    while (true) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        await this.#processOne(key);
      } finally {
        this.queue.done(key);
        this.#opts.metrics?.queueDepth.set({ controller: this.name }, this.queue.len());
      }
    }
  }

  async #processOne(key: string): Promise<void> {
    const m = this.#opts.metrics;
    const log = this.#log.with({ key });
    const t0 = performance.now();
    let result: ReconcileResult;
    try {
      result = await this.#opts.reconcile(key, log);
    } catch (err) {
      m?.reconcileErrors.inc({ controller: this.name });
      if (err instanceof TerminalError) {
        m?.reconcileTotal.inc({ controller: this.name, result: "terminal_error" });
        log.warn("reconcile failed terminally; not retrying", { err });
        this.queue.forget(key);
        return;
      }
      m?.reconcileTotal.inc({ controller: this.name, result: "error" });
      if (!this.queue.shuttingDown) {
        const delay = this.queue.addRateLimited(key);
        log.warn("reconcile failed; will retry", {
          err,
          retryInMs: delay,
          attempt: this.queue.numRequeues(key),
        });
      }
      return;
    } finally {
      m?.reconcileDuration.observe({ controller: this.name }, (performance.now() - t0) / 1000);
    }
    this.queue.forget(key);
    log.debug("reconciled", {
      ms: Math.round(performance.now() - t0),
      requeueAfterMs: result?.requeueAfterMs,
    });
    if (result?.requeueAfterMs !== undefined) {
      m?.reconcileTotal.inc({ controller: this.name, result: "requeue" });
      this.queue.addAfter(key, result.requeueAfterMs);
    } else {
      m?.reconcileTotal.inc({ controller: this.name, result: "success" });
    }
  }
}

/** The queue key of an object: `namespace/name`, or `name` when cluster-scoped. */
export function keyOf(obj: { metadata?: { name?: string; namespace?: string } }): string {
  const { name, namespace } = obj.metadata ?? {};
  if (!name) throw new Error("Object has no metadata.name");
  return namespace ? `${namespace}/${name}` : name;
}

/** Splits a queue key into namespace (empty for cluster-scoped) and name. */
export function splitKey(key: string): { namespace: string; name: string } {
  const i = key.indexOf("/");
  return i < 0
    ? { namespace: "", name: key }
    : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}
