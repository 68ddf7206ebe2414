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

/** Opens the freezes: reads the records a previous process left, thaws the expired. */
export async function openFreezes(opts: FreezesOptions): Promise<Freezes> {
  const now = opts.now ?? Date.now;
  // How freezes that are no longer held ended (this process's memory only).
  const ended = new Map<string, FreezeState>();
  const ref = (r: Pick<FreezeRecord, "namespace" | "pod" | "containers">) => ({
    namespace: r.namespace,
    pod: r.pod,
    containers: r.containers,
  });
  const deadlines = await FreezeDeadlines.open({
    dir: opts.dir,
    thaw: (rec) => opts.freezer.thaw(ref(rec)),
    onEvent: (e) => {
      if (e.type !== "thawed") return;
      const msg =
        `Thawed by its deadline ${e.lateMs} ms after it passed (nobody renewed the freeze)`;
      ended.set(e.record.key, stateOf(e.record, "thawed", msg));
      opts.onThawed?.(e.record, "deadline");
    },
  });
  const stateOf = (
    r: Pick<FreezeRecord, "key" | "namespace" | "pod"> & Partial<FreezeRecord>,
    state: FreezeState["state"],
    message = "",
  ): FreezeState => ({
    key: r.key,
    namespace: r.namespace,
    pod: r.pod,
    state,
    frozenAtMs: r.frozenAt ?? 0,
    deadlineMs: state === "frozen" ? r.deadline ?? 0 : 0,
    message,
  });
  const find = (key: string) => deadlines.list().find((r) => r.key === key);
  const current = (key: string, namespace: string, pod: string): FreezeState => {
    const r = find(key);
    if (r) return stateOf(r, "frozen");
    return ended.get(key) ??
      stateOf({ key, namespace, pod }, "unknown", "No freeze held under this key");
  };
  const validate = (key: string, namespace: string, pod: string) => {
    if (!KEY.test(key)) throw new Error(`Freeze key "${key}" is not [A-Za-z0-9._-]{1,200}`);
    if (!namespace || !pod) throw new Error(`Freeze "${key}" needs the pod's namespace and name`);
  };
  const seconds = (s: number | undefined) => {
    const v = s ?? 120;
    if (!Number.isInteger(v) || v < 10 || v > 3600) {
      throw new Error(`deadline_seconds ${v} is outside 10..3600`);
    }
    return v;
  };
  const freezing = new Map<string, Promise<FreezeState>>();

  return {
    freeze(req) {
      validate(req.key, req.namespace, req.pod);
      const secs = seconds(req.deadlineSeconds);
      const held = find(req.key);
      if (held) {
        if (held.namespace !== req.namespace || held.pod !== req.pod) {
          return Promise.reject(
            new Error(`Freeze key "${req.key}" holds pod "${held.namespace}/${held.pod}"`),
          );
        }
        return Promise.resolve(stateOf(held, "frozen"));
      }
      const done = ended.get(req.key);
      if (done) return Promise.resolve(done);
      // One freeze per key at a time: concurrent callers share it.
      let p = freezing.get(req.key);
      if (!p) {
        p = (async () => {
          const paused = await opts.freezer.pause({ namespace: req.namespace, pod: req.pod });
          const rec: FreezeRecord = {
            key: req.key,
            namespace: req.namespace,
            pod: req.pod,
            containers: paused.containers,
            frozenAt: paused.frozenAt,
            deadline: now() + secs * 1000,
          };
          try {
            await deadlines.arm(rec);
          } catch (err) {
            await opts.freezer.thaw(ref(rec)).catch(() => {});
            throw err;
          }
          return stateOf(
            rec,
            "frozen",
            `Paused ${paused.containers.length} container(s) in ${paused.pauseMs} ms`,
          );
        })().finally(() => freezing.delete(req.key));
        freezing.set(req.key, p);
      }
      return p;
    },

    async control({ key, namespace, pod, action, deadlineSeconds }) {
      validate(key, namespace, pod);
      const rec = find(key);
      if (rec && (rec.namespace !== namespace || rec.pod !== pod)) {
        throw new Error(`Freeze key "${key}" holds pod "${rec.namespace}/${rec.pod}"`);
      }
      switch (action) {
        case "STATUS":
          return current(key, namespace, pod);
        case "EXTEND": {
          const secs = seconds(deadlineSeconds);
          if (rec && await deadlines.extend(key, now() + secs * 1000)) {
            return stateOf(find(key)!, "frozen");
          }
          return current(key, namespace, pod);
        }
        case "CONFIRM": {
          if (rec && await deadlines.confirm(key)) {
            const s = stateOf(rec, "confirmed", "Hand-over: the deadline is off, kill follows");
            ended.set(key, s);
            return s;
          }
          return current(key, namespace, pod);
        }
        case "KILL": {
          // Only a confirmed (or never-deadlined) freeze is killed: a pod its
          // deadline thawed runs again and is nobody's to kill.
          const was = ended.get(key)?.state;
          if (rec && !(await deadlines.confirm(key))) return current(key, namespace, pod);
          if (was === "thawed") return current(key, namespace, pod);
          await opts.freezer.kill({ namespace, pod, containers: rec?.containers });
          const s = stateOf(rec ?? { key, namespace, pod }, "killed", "Killed while frozen");
          ended.set(key, s);
          return s;
        }
        case "THAW": {
          if (rec) await deadlines.thawNow(key);
          else await opts.freezer.thaw({ namespace, pod });
          const s = stateOf(rec ?? { key, namespace, pod }, "thawed", "Thawed on request");
          ended.set(key, s);
          if (rec) opts.onThawed?.(rec, "request");
          return s;
        }
      }
      throw new Error(`Unknown freeze action "${action}"`);
    },

    held(key, namespace, pod, container) {
      const rec = find(key);
      if (!rec || rec.namespace !== namespace || rec.pod !== pod) {
        const s = current(key, namespace, pod);
        return {
          refusal:
            `Pod "${namespace}/${pod}" is not frozen under "${key}" on this node (${s.state}${
              s.message ? `: ${s.message}` : ""
            }); a final checkpoint is taken only of a frozen pod`,
        };
      }
      const c = rec.containers.find((x) => x.name === container);
      if (!c) {
        return {
          refusal:
            `Container "${container}" was not running when pod "${namespace}/${pod}" was frozen`,
        };
      }
      return { id: c.id };
    },

    isPaused: (id) => opts.freezer.isPaused(id),

    close: () => deadlines.close(),
  };
}
