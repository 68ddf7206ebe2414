/**
 * A work queue in the manner of client-go's: keys are de-duplicated, one key
 * is never processed by two workers at once (a key added while in flight is
 * queued again when its worker is done), failures back off per key
 * exponentially, and a token bucket limits the overall retry rate.
 *
 * Why hand-written (kept by decision): client-node 2.0.1 ships informers but
 * no work queue, and npm has no maintained port of client-go's
 * `workqueue` semantics (de-duplication, one key in flight at a time,
 * per-key exponential backoff plus an overall token bucket); generic job
 * queues (p-queue, bull) give concurrency limits but not "one worker per key,
 * re-queue if added while in flight", which level-based reconcilers rely on.
 * About 150 lines, pinned by workqueue_test.ts with an injected clock.
 * @module
 */

/** The default longest per-key delay (see {@linkcode WorkQueueOptions.maxDelayMs}). */
export const DEFAULT_MAX_DELAY_MS = 5_000;

/** Options for {@linkcode WorkQueue}. */
export interface WorkQueueOptions {
  /** First retry delay of a failing key. Default 50 ms. */
  baseDelayMs?: number;
  /**
   * Longest per-key delay. Default 5 s, not client-go's minutes: a reconcile
   * that fails because an agent is unreachable may be the one that renews a
   * frozen source's deadline (freezeDeadlineSeconds, at least 10) or thaws
   * it. Backed off for minutes, it comes back long after the agent did, and
   * the source stays frozen until its deadline thaws it (measured by the
   * chaos suite: an agent back after 8 s, the controller's next try 18 s
   * later, the source frozen 30 s).
   */
  maxDelayMs?: number;
  /** Sustained rate of rate-limited adds across all keys, per second. Default 10. */
  qps?: number;
  /** Bucket size of the overall rate limiter. Default 100. */
  burst?: number;
  /** Clock, for tests. */
  now?: () => number;
}

/** The longest delay a timer holds (setTimeout fires at once beyond it). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A de-duplicating, rate-limited queue of string keys. */
export class WorkQueue {
  #queue: string[] = [];
  #dirty = new Set<string>();
  #processing = new Set<string>();
  #failures = new Map<string, number>();
  #timers = new Map<string, { at: number; id: ReturnType<typeof setTimeout> }>();
  #waiters: ((key: string | undefined) => void)[] = [];
  #shuttingDown = false;
  #tokens: number;
  #lastRefill: number;
  readonly #opts: Required<Omit<WorkQueueOptions, "now">>;
  readonly #now: () => number;

  /** Creates an empty queue. */
  constructor(opts: WorkQueueOptions = {}) {
    this.#opts = {
      baseDelayMs: opts.baseDelayMs ?? 50,
      maxDelayMs: opts.maxDelayMs ?? DEFAULT_MAX_DELAY_MS,
      qps: opts.qps ?? 10,
      burst: opts.burst ?? 100,
    };
    this.#now = opts.now ?? Date.now;
    this.#tokens = this.#opts.burst;
    this.#lastRefill = this.#now();
  }

  /** Queues `key` now, unless it is already waiting. */
  add(key: string): void {
    if (this.#shuttingDown || this.#dirty.has(key)) return;
    this.#dirty.add(key);
    if (this.#processing.has(key)) return; // re-queued by done()
    const waiter = this.#waiters.shift();
    if (waiter) {
      this.#dirty.delete(key);
      this.#processing.add(key);
      waiter(key);
    } else {
      this.#queue.push(key);
    }
  }

  /**
   * Queues `key` after `delayMs`; an earlier pending add for the key wins.
   * A delay beyond what a timer holds (2^31 - 1 ms, ~24.8 days; longer ones
   * fire at once) is cut to that: the reconcile then asks again for the rest.
   */
  addAfter(key: string, delayMs: number): void {
    if (this.#shuttingDown) return;
    if (delayMs <= 0) return this.add(key);
    delayMs = Math.min(delayMs, MAX_TIMER_MS);
    const at = this.#now() + delayMs;
    const pending = this.#timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.id);
    const id = setTimeout(() => {
      this.#timers.delete(key);
      this.add(key);
    }, delayMs);
    this.#timers.set(key, { at, id });
  }

  /**
   * Queues `key` after its backoff: `base * 2^failures` capped at the max,
   * or later if the overall rate limiter says so. Returns the delay used.
   */
  addRateLimited(key: string): number {
    const n = this.#failures.get(key) ?? 0;
    this.#failures.set(key, n + 1);
    const backoff = Math.min(this.#opts.baseDelayMs * 2 ** n, this.#opts.maxDelayMs);
    const delay = Math.max(backoff, this.#bucketDelay());
    this.addAfter(key, delay);
    return delay;
  }

  /** Forgets the failure history of `key` (after a success). */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  /** How many times `key` was re-queued for failure since it was last forgotten. */
  numRequeues(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** Waits for the next key; `undefined` once the queue is shut down and drained. */
  get(): Promise<string | undefined> {
    const key = this.#queue.shift();
    if (key !== undefined) {
      this.#dirty.delete(key);
      this.#processing.add(key);
      return Promise.resolve(key);
    }
    if (this.#shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Marks `key` processed; if it was added meanwhile, queues it again. */
  done(key: string): void {
    this.#processing.delete(key);
    if (this.#dirty.has(key)) {
      this.#dirty.delete(key);
      this.add(key);
    }
  }

  /** Number of keys waiting (not counting delayed or in-flight keys). */
  len(): number {
    return this.#queue.length;
  }

  /** Keys with a delayed add pending. */
  delayedLen(): number {
    return this.#timers.size;
  }

  /** Stops accepting keys, cancels delayed adds and releases waiting workers. */
  shutDown(): void {
    this.#shuttingDown = true;
    for (const t of this.#timers.values()) clearTimeout(t.id);
    this.#timers.clear();
    for (const w of this.#waiters.splice(0)) w(undefined);
  }

  /** True after {@linkcode shutDown}. */
  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  #bucketDelay(): number {
    const now = this.#now();
    this.#tokens = Math.min(
      this.#opts.burst,
      this.#tokens + ((now - this.#lastRefill) / 1000) * this.#opts.qps,
    );
    this.#lastRefill = now;
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens / this.#opts.qps) * 1000);
  }
}
