/**
 * Agent operations: long work (a checkpoint, a pre-pull, a restore) recorded
 * as one JSON file per operation in the state dir, written atomically (temp +
 * rename). An id is the caller's idempotency key. When the agent restarts,
 * every operation that was still running is marked Failed ("agent restarted
 * during ...") and its work directory is removed. The phases and the
 * checkpoint result are the contract's (`contract/agent.ts`), the types the
 * controllers read back; only the store is the agent's own.
 * @module
 */
import type { CheckpointResult, OperationPhase, PreCopyResult } from "../contract/agent.ts";

/** Kinds of operation. */
export type OperationKind = "checkpoint" | "prepareRestore" | "restoreContainer" | "preCopy";

/** The outcome of a restore or pre-pull operation. */
export interface RestoreResult {
  /** New container id (Docker restore). */
  containerId?: string;
  /** Image available on the node (pre-pull). */
  image?: string;
}

/** One operation as stored and served. */
export interface Operation {
  /** Caller-chosen id. */
  id: string;
  /** What it does. */
  kind: OperationKind;
  /** Where it is. */
  phase: OperationPhase;
  /** Step within the operation ("checkpointing", "uploading", ...). */
  step: string;
  /** Bytes done in the current step. */
  bytesDone: number;
  /** Bytes expected in the current step (0: unknown). */
  bytesTotal: number;
  /** Progress or error message. */
  message: string;
  /** Checkpoint outcome. */
  result?: CheckpointResult;
  /** Restore outcome. */
  restore?: RestoreResult;
  /** Pre-copy outcome (its last round stays in the work dir until the operation is deleted). */
  preCopy?: PreCopyResult;
  /** What the operation is about, `<namespace>/<pod>/<container>` (pre-copy: checked by the final checkpoint). */
  subject?: string;
  /** Pre-copy: the most rounds of its chain (fixes where its images sit in the image). */
  maxRounds?: number;
  /** RFC 3339 creation time. */
  created: string;
  /** RFC 3339 time of the last change. */
  updated: string;
  /** Digest of the request that created it: a retry with other parameters is refused. */
  fingerprint: string;
  /** Node-local files the operation owns (archives, work dirs), removed by DeleteCheckpoint. */
  localPaths?: string[];
}

/** Removes an operation's node-local files; only absolute paths without "..", never "/". */
async function removeLocalPaths(paths: string[]): Promise<void> {
  for (const p of paths) {
    if (!p.startsWith("/") || p === "/" || p.split("/").includes("..")) continue;
    await Deno.remove(p, { recursive: true }).catch(() => {});
  }
}

/** Thrown when an id is reused with a different request. */
export class OperationConflictError extends Error {
  /** Creates the error for operation `id`. */
  constructor(id: string) {
    super(
      `Operation "${id}" already exists with different parameters; ` +
        "choose a new operation id for a different request",
    );
    this.name = "OperationConflictError";
  }
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Returns a message when `id` is not a valid operation id, else undefined. */
export function operationIdProblem(id: string): string | undefined {
  if (!ID.test(id)) {
    return `Operation id "${id}" is invalid: it must be 1-128 letters, digits, ".", "_" or "-" ` +
      "and start with a letter or digit";
  }
  return undefined;
}

/** True when the phase is final. */
export function isFinal(phase: OperationPhase): boolean {
  return phase === "Succeeded" || phase === "Failed";
}

/** Fields an update may change. */
export type OperationPatch = Partial<
  Pick<
    Operation,
    | "phase"
    | "step"
    | "bytesDone"
    | "bytesTotal"
    | "message"
    | "result"
    | "restore"
    | "preCopy"
    | "subject"
    | "maxRounds"
    | "localPaths"
  >
>;

/** Options for {@linkcode OperationStore.open}. */
export interface OperationStoreOptions {
  /** Called for each operation marked Failed on recovery. */
  onRecovered?: (op: Operation) => void;
  /** Minimum interval between progress-only writes to disk, ms (default 500). */
  progressWriteMs?: number;
}

/** The operations of one agent, persisted in `<stateDir>/operations/`. */
export class OperationStore {
  readonly #ops = new Map<string, Operation>();
  readonly #watchers = new Map<string, Set<(op: Operation) => void>>();
  readonly #lastWrite = new Map<string, number>();
  readonly #writing = new Map<string, Promise<void>>();
  readonly #finalizing = new Set<string>();
  readonly #progressWriteMs: number;

  private constructor(readonly stateDir: string, opts: OperationStoreOptions) {
    this.#progressWriteMs = opts.progressWriteMs ?? 500;
  }

  /** Directory of operation files. */
  get operationsDir(): string {
    return `${this.stateDir}/operations`;
  }

  /** Work directory of one operation (temp files; removed on recovery). */
  workDir(id: string): string {
    return `${this.stateDir}/work/${id}`;
  }

  /**
   * Opens (creating) the state dir, loads every operation, fails the ones a
   * previous process left running and removes every work directory of an
   * operation that is not final (temp files of a killed agent).
   */
  static async open(stateDir: string, opts: OperationStoreOptions = {}): Promise<OperationStore> {
    const store = new OperationStore(stateDir, opts);
    await Deno.mkdir(store.operationsDir, { recursive: true, mode: 0o700 });
    await Deno.mkdir(`${stateDir}/work`, { recursive: true, mode: 0o700 });
    for await (const e of Deno.readDir(store.operationsDir)) {
      const path = `${store.operationsDir}/${e.name}`;
      if (e.name.endsWith(".tmp")) {
        await Deno.remove(path).catch(() => {});
        continue;
      }
      if (!e.name.endsWith(".json")) continue;
      let op: Operation;
      try {
        op = JSON.parse(await Deno.readTextFile(path)) as Operation;
      } catch {
        // A torn write cannot happen (rename is atomic); an unreadable file is foreign.
        continue;
      }
      if (!isFinal(op.phase)) {
        op.phase = "Failed";
        op.message = `Agent restarted during "${op.step || op.phase}"; the ${op.kind} ` +
          "did not finish and nothing of it was published";
        op.updated = new Date().toISOString();
        // Its archive on the node (a dump taken, its upload cut off) is of no
        // use: nothing refers to it, and no DeleteCheckpoint would remove it.
        await removeLocalPaths(op.localPaths ?? []);
        if (op.localPaths?.length) {
          op.message += `; its archive on the node was removed (${op.localPaths.join(", ")})`;
          op.localPaths = [];
        }
        await store.#write(op);
        opts.onRecovered?.(op);
      }
      store.#ops.set(op.id, op);
    }
    for await (const e of Deno.readDir(`${stateDir}/work`)) {
      const op = store.#ops.get(e.name);
      if (!op || isFinal(op.phase)) {
        await Deno.remove(`${stateDir}/work/${e.name}`, { recursive: true }).catch(() => {});
      }
    }
    return store;
  }

  /** One operation, or undefined. */
  get(id: string): Operation | undefined {
    const op = this.#ops.get(id);
    return op && structuredClone(op);
  }

  /** Every operation. */
  list(): Operation[] {
    return [...this.#ops.values()].map((o) => structuredClone(o));
  }

  /** Number of operations not final. */
  running(): number {
    return [...this.#ops.values()].filter((o) => !isFinal(o.phase)).length;
  }

  /**
   * Creates operation `id`, or returns the existing one when the same request
   * was made before (`created: false`). A different request under the same id
   * throws {@linkcode OperationConflictError}.
   */
  async begin(
    id: string,
    kind: OperationKind,
    fingerprint: string,
  ): Promise<{ op: Operation; created: boolean }> {
    const problem = operationIdProblem(id);
    if (problem) throw new Error(problem);
    const existing = this.#ops.get(id);
    if (existing) {
      if (existing.kind !== kind || existing.fingerprint !== fingerprint) {
        throw new OperationConflictError(id);
      }
      return { op: structuredClone(existing), created: false };
    }
    const now = new Date().toISOString();
    const op: Operation = {
      id,
      kind,
      phase: "Pending",
      step: "queued",
      bytesDone: 0,
      bytesTotal: 0,
      message: "",
      created: now,
      updated: now,
      fingerprint,
    };
    // Set before the write so a concurrent duplicate sees it.
    this.#ops.set(id, op);
    await this.#write(op);
    return { op: structuredClone(op), created: true };
  }

  /** Applies `patch`, notifies watchers, persists (progress-only updates are throttled). */
  /**
   * Records that a finished operation's node-local files are gone (a
   * pre-copy round whose dump served the next round or the final
   * checkpoint): the one change a final operation takes.
   */
  async clearLocalPaths(id: string): Promise<void> {
    const op = this.#ops.get(id);
    if (!op?.localPaths?.length) return;
    await this.#writing.get(id);
    const next: Operation = { ...op, localPaths: [], updated: new Date().toISOString() };
    await this.#write(next);
    Object.assign(op, next);
  }

  async update(id: string, patch: OperationPatch): Promise<Operation> {
    const op = this.#ops.get(id);
    if (!op) throw new Error(`Operation "${id}" not found`);
    if (isFinal(op.phase) || this.#finalizing.has(id)) return structuredClone(op);
    // Nothing may be written after the final state, even while its write is in flight.
    if (patch.phase && isFinal(patch.phase)) this.#finalizing.add(id);
    const progressOnly = Object.keys(patch).every((k) => k === "bytesDone" || k === "bytesTotal");
    const next: Operation = { ...op, ...patch, updated: new Date().toISOString() };
    const last = this.#lastWrite.get(id) ?? 0;
    // A phase or step change is durable before anyone can see it: what a
    // client was told is what a restarted agent reports.
    if (!progressOnly) await this.#write(next);
    else if (Date.now() - last >= this.#progressWriteMs) void this.#write(next);
    this.#finalizing.delete(id);
    Object.assign(op, next);
    const snapshot = structuredClone(op);
    for (const w of this.#watchers.get(id) ?? []) w(snapshot);
    return snapshot;
  }

  /** Calls `fn` on every change of operation `id`; returns the unsubscribe function. */
  watch(id: string, fn: (op: Operation) => void): () => void {
    let set = this.#watchers.get(id);
    if (!set) this.#watchers.set(id, set = new Set());
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0) this.#watchers.delete(id);
    };
  }

  /** Forgets a final operation and removes its file. */
  async remove(id: string): Promise<void> {
    this.#ops.delete(id);
    await Deno.remove(`${this.operationsDir}/${id}.json`).catch(() => {});
  }

  /** Waits for pending writes. */
  async flush(): Promise<void> {
    await Promise.all(this.#writing.values());
  }

  #write(op: Operation): Promise<void> {
    // Writes of one operation are serialized so an older snapshot never lands last.
    const prev = this.#writing.get(op.id) ?? Promise.resolve();
    const json = JSON.stringify(op, null, 2);
    const next = prev.then(async () => {
      const path = `${this.operationsDir}/${op.id}.json`;
      const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
      const f = await Deno.open(tmp, { write: true, create: true, truncate: true, mode: 0o600 });
      try {
        const bytes = new TextEncoder().encode(json);
        for (let n = 0; n < bytes.length;) n += await f.write(bytes.subarray(n));
        await f.sync();
      } finally {
        f.close();
      }
      await Deno.rename(tmp, path);
    });
    this.#lastWrite.set(op.id, Date.now());
    const tracked = next.finally(() => {
      if (this.#writing.get(op.id) === tracked) this.#writing.delete(op.id);
    });
    this.#writing.set(op.id, tracked);
    return next;
  }
}
