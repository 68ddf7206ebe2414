/**
 * The pods this agent holds frozen for migrations: freeze (every container of
 * the pod paused through containerd before any is dumped), renew, confirm
 * (hand-over), kill, thaw, and the deadline that thaws a pod by itself when
 * nobody renews it (`runtime/freeze_deadline.ts`: persisted, so an agent
 * restart thaws too). Checkpoints that name a freeze are dumped while the pod
 * stays frozen (the kubelet's checkpoint leaves a task containerd knows as
 * paused paused; `docs/freeze.md`).
 *
 * States a caller sees: `frozen` (held, with a deadline), `confirmed` (the
 * hand-over took it: no deadline any more, the caller kills it), `killed`,
 * `thawed` (it went on: by THAW or by its deadline), `unknown` (never frozen
 * here, or forgotten by a restart after it ended).
 * @module
 */
import type { PodFreezer } from "./runtime/freeze.ts";
import { FreezeDeadlines, type FreezeRecord } from "./runtime/freeze_deadline.ts";
import { EndedFreezes } from "./freezes_ended.ts";

/** What the agent says about a freeze. */
export interface FreezeState {
  /** The caller's key (PodCheckpoint uid). */
  key: string;
  /** Pod namespace. */
  namespace: string;
  /** Pod name. */
  pod: string;
  /** frozen | confirmed | killed | thawed | unknown. */
  state: "frozen" | "confirmed" | "killed" | "thawed" | "unknown";
  /** Epoch ms of the freeze (0 when unknown). */
  frozenAtMs: number;
  /** Epoch ms of the deadline while frozen (0 otherwise). */
  deadlineMs: number;
  /** How it ended or why a request was refused. */
  message: string;
}

/** A freeze request. */
export interface FreezeRequest {
  /** Caller's key: `[A-Za-z0-9._-]`, at most 200 characters. */
  key: string;
  /** Pod namespace. */
  namespace: string;
  /** Pod name. */
  pod: string;
  /** Seconds until the agent thaws the pod unless renewed (10 to 3600). */
  deadlineSeconds: number;
}

/** Actions on a held freeze. */
export type FreezeAction = "STATUS" | "EXTEND" | "CONFIRM" | "KILL" | "THAW";

/** Options of {@linkcode openFreezes}. */
export interface FreezesOptions {
  /** Directory of the deadline records (`<state-dir>/freezes`). */
  dir: string;
  /** The node's freezer (containerd). */
  freezer: PodFreezer;
  /** Deadline thaws, for logs. */
  onThawed?: (record: FreezeRecord, how: string) => void;
  /** Clock (tests). */
  now?: () => number;
}

/** The agent's frozen pods. */
export interface Freezes {
  /** Freezes the pod under `key` (idempotent: a held key answers its state). */
  freeze(req: FreezeRequest): Promise<FreezeState>;
  /** Acts on a freeze; `namespace`/`pod` let KILL and THAW work after an agent restart. */
  control(
    req: {
      key: string;
      namespace: string;
      pod: string;
      action: FreezeAction;
      deadlineSeconds?: number;
    },
  ): Promise<FreezeState>;
  /** The container id of `container` when `key` holds its pod frozen, else a refusal message. */
  held(
    key: string,
    namespace: string,
    pod: string,
    container: string,
  ): { id?: string; refusal?: string };
  /** True when the runtime reports the container paused. */
  isPaused(id: string): Promise<boolean>;
  /** Stops the timers (records stay on disk). */
  close(): void;
}

const KEY = /^[A-Za-z0-9._-]{1,200}$/;

/** A control request of {@linkcode Freezes.control}. */
type ControlRequest = Parameters<Freezes["control"]>[0];

/** What the freezes' steps share. */
interface FreezesContext {
  opts: FreezesOptions;
  now: () => number;
  deadlines: FreezeDeadlines;
  // How freezes that are no longer held ended (this process's memory only).
  ended: Map<string, FreezeState>;
  // One freeze per key at a time: concurrent callers share it.
  freezing: Map<string, Promise<FreezeState>>;
  // Keys being thawed on request (not by their deadline).
  requested: Set<string>;
}

/** Opens the freezes: reads the records a previous process left, thaws the expired. */
export async function openFreezes(opts: FreezesOptions): Promise<Freezes> {
  // Beside the records' dir, not in it: a record there means "frozen".
  const ended = await EndedFreezes.open<FreezeState>(`${opts.dir}-ended`);
  const requested = new Set<string>();
  const deadlines = await FreezeDeadlines.open({
    dir: opts.dir,
    thaw: (rec) => thawHeld(opts.freezer, rec),
    onEvent: (e) => {
      // A thaw asked for (THAW, a lost freeze) is reported by its caller.
      if (e.type !== "thawed" || requested.has(e.record.key)) return;
      const msg =
        `Thawed by its deadline ${e.lateMs} ms after it passed (nobody renewed the freeze)`;
      ended.set(e.record.key, stateOf(e.record, "thawed", msg));
      opts.onThawed?.(e.record, "deadline");
    },
  });
  const ctx: FreezesContext = {
    opts,
    now: opts.now ?? Date.now,
    deadlines,
    ended,
    requested,
    freezing: new Map(),
  };
  return {
    freeze: (req) => freeze(ctx, req),
    control: (req) => control(ctx, req),
    held: (key, namespace, pod, container) => held(ctx, key, namespace, pod, container),
    isPaused: (id) => opts.freezer.isPaused(id),
    close: () => deadlines.close(),
  };
}

/**
 * Thaws a held freeze (deadline, THAW, a failed migration): resumes the
 * pod's paused containers, except one whose container runs again as a new
 * instance (the kubelet restarted it after a containerd restart lost the
 * freeze, see {@linkcode lost}): that old task is killed, never resumed, or
 * two copies of the container would run.
 */
async function thawHeld(freezer: PodFreezer, rec: FreezeRecord): Promise<string[]> {
  const live = await freezer.liveContainers(ref(rec));
  const again = rec.containers.filter((c) => live.some((x) => x.name === c.name && x.id !== c.id));
  if (again.length) {
    await freezer.kill({ namespace: rec.namespace, pod: rec.pod, containers: again });
  }
  const rest = rec.containers.filter((c) => !again.includes(c));
  return rest.length ? await freezer.thaw({ ...ref(rec), containers: rest }) : [];
}

function ref(r: Pick<FreezeRecord, "namespace" | "pod" | "containers">) {
  return { namespace: r.namespace, pod: r.pod, containers: r.containers };
}

function stateOf(
  r: Pick<FreezeRecord, "key" | "namespace" | "pod"> & Partial<FreezeRecord>,
  state: FreezeState["state"],
  message = "",
): FreezeState {
  return {
    key: r.key,
    namespace: r.namespace,
    pod: r.pod,
    state,
    frozenAtMs: r.frozenAt ?? 0,
    deadlineMs: state === "frozen" ? r.deadline ?? 0 : 0,
    message,
  };
}

function find(ctx: FreezesContext, key: string): FreezeRecord | undefined {
  return ctx.deadlines.list().find((r) => r.key === key);
}

function current(ctx: FreezesContext, key: string, namespace: string, pod: string): FreezeState {
  const r = find(ctx, key);
  if (r) return stateOf(r, "frozen");
  return ctx.ended.get(key) ??
    stateOf({ key, namespace, pod }, "unknown", "No freeze held under this key");
}

function validate(key: string, namespace: string, pod: string): void {
  if (!KEY.test(key)) throw new Error(`Freeze key "${key}" is not [A-Za-z0-9._-]{1,200}`);
  if (!namespace || !pod) throw new Error(`Freeze "${key}" needs the pod's namespace and name`);
}

function seconds(s: number | undefined): number {
  const v = s ?? 120;
  if (!Number.isInteger(v) || v < 10 || v > 3600) {
    throw new Error(`deadline_seconds ${v} is outside 10..3600`);
  }
  return v;
}

function freeze(ctx: FreezesContext, req: FreezeRequest): Promise<FreezeState> {
  validate(req.key, req.namespace, req.pod);
  const secs = seconds(req.deadlineSeconds);
  const held = find(ctx, req.key);
  if (held) {
    if (held.namespace !== req.namespace || held.pod !== req.pod) {
      return Promise.reject(
        new Error(`Freeze key "${req.key}" holds pod "${held.namespace}/${held.pod}"`),
      );
    }
    return Promise.resolve(stateOf(held, "frozen"));
  }
  const done = ctx.ended.get(req.key);
  if (done) return Promise.resolve(done);
  // One freeze per key at a time: concurrent callers share it.
  let p = ctx.freezing.get(req.key);
  if (!p) {
    p = pauseAndArm(ctx, req, secs).finally(() => ctx.freezing.delete(req.key));
    ctx.freezing.set(req.key, p);
  }
  return p;
}

/** Pauses the pod and arms its deadline; thaws it again when the deadline cannot be armed. */
async function pauseAndArm(
  ctx: FreezesContext,
  req: FreezeRequest,
  secs: number,
): Promise<FreezeState> {
  const paused = await ctx.opts.freezer.pause({ namespace: req.namespace, pod: req.pod });
  const rec: FreezeRecord = {
    key: req.key,
    namespace: req.namespace,
    pod: req.pod,
    containers: paused.containers,
    frozenAt: paused.frozenAt,
    deadline: ctx.now() + secs * 1000,
  };
  try {
    await ctx.deadlines.arm(rec);
  } catch (err) {
    await ctx.opts.freezer.thaw(ref(rec)).catch(() => {});
    throw err;
  }
  return stateOf(
    rec,
    "frozen",
    `Paused ${paused.containers.length} container(s) in ${paused.pauseMs} ms`,
  );
}

async function control(ctx: FreezesContext, req: ControlRequest): Promise<FreezeState> {
  const { key, namespace, pod, action, deadlineSeconds } = req;
  validate(key, namespace, pod);
  const rec = find(ctx, key);
  if (rec && (rec.namespace !== namespace || rec.pod !== pod)) {
    throw new Error(`Freeze key "${key}" holds pod "${rec.namespace}/${rec.pod}"`);
  }
  switch (action) {
    case "STATUS":
      return current(ctx, key, namespace, pod);
    case "EXTEND": {
      const secs = seconds(deadlineSeconds);
      if (rec && await lost(ctx, rec)) return current(ctx, key, namespace, pod);
      if (rec && await ctx.deadlines.extend(key, ctx.now() + secs * 1000)) {
        return stateOf(find(ctx, key)!, "frozen");
      }
      return current(ctx, key, namespace, pod);
    }
    case "CONFIRM": {
      if (rec && await lost(ctx, rec)) return current(ctx, key, namespace, pod);
      if (rec && await ctx.deadlines.confirm(key)) {
        const s = stateOf(rec, "confirmed", "Hand-over: the deadline is off, kill follows");
        ctx.ended.set(key, s);
        return s;
      }
      return current(ctx, key, namespace, pod);
    }
    case "KILL":
      return await kill(ctx, req, rec);
    case "THAW": {
      if (rec) await thawOnRequest(ctx, key);
      else await ctx.opts.freezer.thaw({ namespace, pod });
      const s = stateOf(rec ?? { key, namespace, pod }, "thawed", "Thawed on request");
      ctx.ended.set(key, s);
      if (rec) ctx.opts.onThawed?.(rec, "request");
      return s;
    }
  }
  throw new Error(`Unknown freeze action "${action}"`);
}

/**
 * True when the runtime lost the held freeze `rec` behind the agent's back:
 * a container's task is no longer paused, or the pod's container of that
 * name runs again as another instance. A containerd restart does that: its
 * CRI plugin cannot load a PAUSED task and marks the container UNKNOWN; the
 * kubelet's kill cannot end a frozen process (the SIGKILL waits for a thaw),
 * and it starts the container again from scratch next to the old, still
 * paused task (docs/freeze.md, seen in tests/chaos/nodes_test.ts). The
 * freeze then ends as "thawed" with a message naming the container: an old
 * task whose container runs again is killed (never resumed: that would be a
 * second copy), the rest of the pod is resumed, the record goes, and the
 * migration fails instead of handing over. A runtime that cannot answer
 * (containerd down) throws: the caller retries.
 */
async function lost(ctx: FreezesContext, rec: FreezeRecord): Promise<boolean> {
  const { freezer } = ctx.opts;
  const live = await freezer.liveContainers(ref(rec));
  for (const c of rec.containers) {
    const again = live.find((x) => x.name === c.name && x.id !== c.id);
    if (!again && await freezer.isPaused(c.id)) continue;
    await thawOnRequest(ctx, rec.key); // kills `again`'s old task (thawHeld)
    const what = again
      ? `runs again as a new instance (${again.id.slice(0, 12)}), started from scratch`
      : "is no longer paused";
    const msg =
      `Container "${c.name}" (${c.id.slice(0, 12)}) of pod "${rec.namespace}/${rec.pod}" ` +
      `${what}: its runtime lost the freeze (a containerd restart marks a paused task UNKNOWN ` +
      "and the kubelet restarts the container); the source did not stay frozen";
    ctx.ended.set(rec.key, stateOf(rec, "thawed", msg));
    ctx.opts.onThawed?.(rec, "lost");
    return true;
  }
  return false;
}

/** Thaws a held freeze now, not reported as a deadline thaw. */
async function thawOnRequest(ctx: FreezesContext, key: string): Promise<void> {
  ctx.requested.add(key);
  try {
    await ctx.deadlines.thawNow(key);
  } finally {
    ctx.requested.delete(key);
  }
}

async function kill(
  ctx: FreezesContext,
  { key, namespace, pod }: ControlRequest,
  rec: FreezeRecord | undefined,
): Promise<FreezeState> {
  // Only a confirmed (or never-deadlined) freeze is killed: a pod its
  // deadline thawed runs again and is nobody's to kill.
  const was = ctx.ended.get(key)?.state;
  if (rec && !(await ctx.deadlines.confirm(key))) return current(ctx, key, namespace, pod);
  if (was === "thawed") return current(ctx, key, namespace, pod);
  await ctx.opts.freezer.kill({ namespace, pod, containers: rec?.containers });
  const s = stateOf(rec ?? { key, namespace, pod }, "killed", "Killed while frozen");
  ctx.ended.set(key, s);
  return s;
}

function held(
  ctx: FreezesContext,
  key: string,
  namespace: string,
  pod: string,
  container: string,
): { id?: string; refusal?: string } {
  const rec = find(ctx, key);
  if (!rec || rec.namespace !== namespace || rec.pod !== pod) {
    const s = current(ctx, key, namespace, pod);
    return {
      refusal: `Pod "${namespace}/${pod}" is not frozen under "${key}" on this node (${s.state}${
        s.message ? `: ${s.message}` : ""
      }); a final checkpoint is taken only of a frozen pod`,
    };
  }
  const c = rec.containers.find((x) => x.name === container);
  if (!c) {
    return {
      refusal: `Container "${container}" was not running when pod "${namespace}/${pod}" was frozen`,
    };
  }
  return { id: c.id };
}
