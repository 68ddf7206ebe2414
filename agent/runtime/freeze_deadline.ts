/**
 * The freeze deadline: a pod this agent froze is thawed by the agent itself
 * when nobody confirms the hand-over in time, so that a dead controller, a
 * lost connection or an agent restart never leaves a workload frozen.
 *
 * Each frozen pod is a JSON record in `<dir>/<key>.json`, written atomically
 * (temp file, fsync, rename) before the timer is armed. `open` reads the
 * records a previous agent process left: expired ones are thawed at once, the
 * others are re-armed for the time they have left. `confirm` ends the
 * deadline (the caller then kills the pod); `extend` moves it (a controller
 * that is still making progress). A thaw that fails is retried, and its
 * record kept, until it succeeds.
 * @module
 */
import type { PodContainer } from "./containerd_tasks.ts";

/** A frozen pod and when it must be thawed. */
export interface FreezeRecord {
  /** Caller's key (the migration's operation id); `[A-Za-z0-9._-]`. */
  key: string;
  /** Pod namespace. */
  namespace: string;
  /** Pod name. */
  pod: string;
  /** The frozen containers. */
  containers: PodContainer[];
  /** Epoch ms of the freeze. */
  frozenAt: number;
  /** Epoch ms after which the agent thaws the pod. */
  deadline: number;
}

/** What happened to a record, for Events and logs. */
export type DeadlineEvent =
  | { type: "thawed"; record: FreezeRecord; lateMs: number }
  | { type: "thawFailed"; record: FreezeRecord; error: string };

/** A clock and timers (real ones by default; a fake one in tests). */
export interface DeadlineClock {
  /** Epoch ms. */
  now(): number;
  /** Calls `fn` after `ms`; returns a handle for `clear`. */
  set(fn: () => void, ms: number): unknown;
  /** Cancels a handle from `set`. */
  clear(handle: unknown): void;
}

/** Options of {@linkcode FreezeDeadlines.open}. */
export interface FreezeDeadlinesOptions {
  /** Directory of the records (e.g. `<state-dir>/freezes`); created if missing. */
  dir: string;
  /** Thaws a pod (the freezer's `thaw`). */
  thaw: (record: FreezeRecord) => Promise<unknown>;
  /** Reports thaws and failed thaws. */
  onEvent?: (event: DeadlineEvent) => void;
  /** Delay before a failed thaw is tried again (default 5 s). */
  retryMs?: number;
  /** Clock and timers, for tests. */
  clock?: DeadlineClock;
}

const realClock: DeadlineClock = {
  now: () => Date.now(),
  set: (fn, ms) => setTimeout(fn, Math.max(0, ms)),
  clear: (h) => clearTimeout(h as number),
};

const KEY = /^[A-Za-z0-9._-]{1,200}$/;

/** The deadlines of the pods this agent keeps frozen. */
export class FreezeDeadlines {
  readonly #opts: Required<Omit<FreezeDeadlinesOptions, "onEvent">> & {
    onEvent: (e: DeadlineEvent) => void;
  };
  readonly #records = new Map<string, FreezeRecord>();
  readonly #timers = new Map<string, unknown>();
  readonly #thawing = new Map<string, Promise<void>>();
  #closed = false;

  private constructor(opts: FreezeDeadlinesOptions) {
    this.#opts = {
      dir: opts.dir,
      thaw: opts.thaw,
      onEvent: opts.onEvent ?? (() => {}),
      retryMs: opts.retryMs ?? 5_000,
      clock: opts.clock ?? realClock,
    };
  }

  /** Loads the records left on disk: thaws the expired, re-arms the rest. */
  static async open(opts: FreezeDeadlinesOptions): Promise<FreezeDeadlines> {
    const d = new FreezeDeadlines(opts);
    await Deno.mkdir(opts.dir, { recursive: true });
    for await (const e of Deno.readDir(opts.dir)) {
      if (!e.isFile) continue;
      const path = `${opts.dir}/${e.name}`;
      if (e.name.endsWith(".tmp")) {
        // A write torn by a crash before its rename: the record never existed.
        await Deno.remove(path).catch(() => {});
        continue;
      }
      if (!e.name.endsWith(".json")) continue;
      const rec = JSON.parse(await Deno.readTextFile(path)) as FreezeRecord;
      d.#records.set(rec.key, rec);
      d.#schedule(rec);
    }
    return d;
  }

  /** Records a frozen pod (on disk first), then arms its deadline. */
  async arm(record: FreezeRecord): Promise<void> {
    if (!KEY.test(record.key)) {
      throw new Error(`Cannot arm a freeze deadline: key "${record.key}" is not [A-Za-z0-9._-]`);
    }
    await this.#write(record);
    this.#records.set(record.key, record);
    this.#schedule(record);
  }

  /** Moves a deadline; false when the pod is no longer frozen under this key. */
  async extend(key: string, deadline: number): Promise<boolean> {
    const rec = this.#records.get(key);
    if (!rec || this.#thawing.has(key)) return false;
    const next = { ...rec, deadline };
    await this.#write(next);
    this.#records.set(key, next);
    this.#schedule(next);
    return true;
  }

  /**
   * Ends the deadline for a hand-over: true when the pod was still frozen
   * (the caller may now kill it), false when the deadline already thawed it
   * or the key is unknown (the caller must not kill it).
   */
  async confirm(key: string): Promise<boolean> {
    const rec = this.#records.get(key);
    if (!rec || this.#thawing.has(key)) return false;
    this.#unschedule(key);
    this.#records.delete(key);
    await Deno.remove(this.#path(key)).catch(() => {});
    return true;
  }

  /** Thaws now (a failed migration); resolves when thawed and forgotten. */
  async thawNow(key: string): Promise<boolean> {
    if (!this.#records.has(key) && !this.#thawing.has(key)) return false;
    this.#unschedule(key);
    await this.#expire(key);
    return !this.#records.has(key);
  }

  /** The records held (frozen pods). */
  list(): FreezeRecord[] {
    return [...this.#records.values()];
  }

  /** Waits for thaws under way (tests, shutdown). */
  async settled(): Promise<void> {
    await Promise.all(this.#thawing.values());
  }

  /** Stops the timers; records stay on disk for the next process. */
  close(): void {
    this.#closed = true;
    for (const key of [...this.#timers.keys()]) this.#unschedule(key);
  }

  #path(key: string): string {
    return `${this.#opts.dir}/${key}.json`;
  }

  #schedule(rec: FreezeRecord, delay = rec.deadline - this.#opts.clock.now()): void {
    this.#unschedule(rec.key);
    if (this.#closed) return;
    this.#timers.set(
      rec.key,
      this.#opts.clock.set(() => {
        this.#timers.delete(rec.key);
        void this.#expire(rec.key);
      }, delay),
    );
  }

  #unschedule(key: string): void {
    const h = this.#timers.get(key);
    if (h !== undefined) this.#opts.clock.clear(h);
    this.#timers.delete(key);
  }

  /** Thaws one record; keeps it and retries on failure. One thaw per key at a time. */
  #expire(key: string): Promise<void> {
    const running = this.#thawing.get(key);
    if (running) return running;
    const rec = this.#records.get(key);
    if (!rec) return Promise.resolve();
    const p = (async () => {
      try {
        await this.#opts.thaw(rec);
        this.#records.delete(key);
        await Deno.remove(this.#path(key)).catch(() => {});
        this.#opts.onEvent({
          type: "thawed",
          record: rec,
          lateMs: Math.max(0, this.#opts.clock.now() - rec.deadline),
        });
      } catch (err) {
        this.#opts.onEvent({ type: "thawFailed", record: rec, error: (err as Error).message });
        this.#schedule(rec, this.#opts.retryMs);
      } finally {
        this.#thawing.delete(key);
      }
    })();
    this.#thawing.set(key, p);
    return p;
  }

  async #write(rec: FreezeRecord): Promise<void> {
    const path = this.#path(rec.key);
    const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
    const f = await Deno.open(tmp, { write: true, create: true, truncate: true, mode: 0o600 });
    try {
      const bytes = new TextEncoder().encode(JSON.stringify(rec, null, 2));
      for (let n = 0; n < bytes.length;) n += await f.write(bytes.subarray(n));
      await f.sync();
    } finally {
      f.close();
    }
    await Deno.rename(tmp, path);
  }
}
