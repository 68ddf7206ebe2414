/**
 * The frozen final checkpoint of a pod on a containerd node.
 *
 * `freeze` pauses every container of the pod through containerd's task API
 * (the shim freezes the container's cgroup and records the task as PAUSED),
 * and only when all of them are paused dumps each one with the runtime's own
 * checkpoint (the kubelet checkpoint API, so the archive is exactly the one
 * the kubelet path produces and the restore side cannot tell the
 * difference). The pod stays frozen afterwards: containerd's client skips its
 * own pause/resume around a dump when the task is already PAUSED
 * (`client/task.go`, `Checkpoint`), and runc/CRIU leave a frozen cgroup
 * frozen with `--leave-running`. `thaw` resumes it exactly where it stopped;
 * `kill` ends it without letting it run another instruction.
 *
 * Why not `runc pause` or the cgroup freezer directly: containerd's shim then
 * still thinks the task runs, its CRI checkpoint tries to pause it again and
 * fails ("OCI runtime pause failed: container not running"), and the archive
 * would have to be assembled by hand. See docs/freeze.md.
 * @module
 */
import type { CheckpointOptions, CheckpointResult, ContainerRef } from "./driver.ts";
import type { ContainerdTasks, PodContainer, TaskStatus } from "./containerd_tasks.ts";

/** Which pod to freeze; `containers` (ids and names) skips the lookup in containerd. */
export interface PodRef {
  /** Pod namespace. */
  namespace: string;
  /** Pod name. */
  pod: string;
  /** The pod's running containers, when the caller knows them. */
  containers?: PodContainer[];
}

/** One container's part of a frozen checkpoint. */
export interface FrozenContainer extends PodContainer {
  /** Its checkpoint archive on this node (the kubelet's layout). */
  archivePath: string;
  /** True when the archive lives outside the work dir and the caller must remove it. */
  ownsArchive: boolean;
  /** Milliseconds its dump took (the runtime's checkpoint call). */
  dumpMs: number;
  /** Runtime that took it. */
  runtime: CheckpointResult["runtime"];
}

/** A pod frozen with its archives taken. */
export interface FrozenPod {
  /** Pod namespace. */
  namespace: string;
  /** Pod name. */
  pod: string;
  /** The containers, each with its archive. */
  containers: FrozenContainer[];
  /** Epoch ms when the last container was paused: no instruction of the pod ran after it. */
  frozenAt: number;
  /** Milliseconds from the first pause request to the last container paused. */
  pauseMs: number;
  /** Milliseconds from `frozenAt` to the last archive written. */
  dumpMs: number;
}

/** Checkpoints one container (the kubelet driver's `checkpoint` fits). */
export type DumpContainer = (
  ref: ContainerRef,
  opts: CheckpointOptions,
) => Promise<CheckpointResult>;

/** Options of {@linkcode createPodFreezer}. */
export interface PodFreezerOptions {
  /** The node's containerd. */
  containerd: ContainerdTasks;
  /** Dumps one (paused) container with leave-running. */
  dump: DumpContainer;
  /** Clock, for tests. */
  now?: () => number;
  /** Poll interval while waiting for a task to change state (default 50 ms). */
  pollMs?: number;
}

/** Options of {@linkcode PodFreezer.freeze}. */
export interface FreezeOptions {
  /** Directory for this checkpoint's temp files. */
  workDir: string;
  /** Cancels between containers (the pod is then thawed). */
  signal?: AbortSignal;
  /** Runtime timeout per container dump, seconds. */
  timeoutSeconds?: number;
}

/** A pod frozen, before any dump. */
export interface PausedPod {
  /** The pod's containers, all paused. */
  containers: PodContainer[];
  /** Epoch ms when the last container was paused. */
  frozenAt: number;
  /** Milliseconds from the first pause request to the last container paused. */
  pauseMs: number;
}

/** Freezes, dumps, thaws and kills whole pods. */
export interface PodFreezer {
  /** Freezes every container of the pod (all paused before this returns); dumps nothing. */
  pause(pod: PodRef): Promise<PausedPod>;
  /** True when the runtime reports the container paused. */
  isPaused(containerId: string): Promise<boolean>;
  /** The pod's containers with a live task (running, paused or pausing), as the runtime lists them now. */
  liveContainers(pod: PodRef): Promise<PodContainer[]>;
  /** Freezes every container of the pod, then dumps each; the pod stays frozen. Thaws on failure. */
  freeze(pod: PodRef, opts: FreezeOptions): Promise<FrozenPod>;
  /** Resumes every paused container of the pod; returns the ids it resumed (idempotent). */
  thaw(pod: PodRef): Promise<string[]>;
  /** Kills every process of the pod's containers without letting them run; waits for the exits. */
  kill(pod: PodRef, opts?: { timeoutMs?: number }): Promise<void>;
}

const SIGKILL = 9;

/** What the freezer's steps share. */
interface FreezerContext {
  ctrd: ContainerdTasks;
  dump: DumpContainer;
  now: () => number;
  pollMs: number;
}

/** Creates a freezer over the node's containerd and the runtime's checkpoint. */
export function createPodFreezer(opts: PodFreezerOptions): PodFreezer {
  const ctx: FreezerContext = {
    ctrd: opts.containerd,
    dump: opts.dump,
    now: opts.now ?? Date.now,
    pollMs: opts.pollMs ?? 50,
  };
  return {
    pause: (pod) => pausePod(ctx, pod),
    async isPaused(id) {
      return (await ctx.ctrd.state(id)).status === "paused";
    },
    liveContainers: (pod) => ctx.ctrd.podContainers(pod.namespace, pod.pod),
    freeze: (pod, fopts) => freezePod(ctx, pod, fopts),
    async thaw(pod) {
      return await resumeEach(ctx, await containersOf(ctx, pod));
    },
    kill: (pod, kopts) => killPod(ctx, pod, kopts),
  };
}

async function containersOf(ctx: FreezerContext, pod: PodRef): Promise<PodContainer[]> {
  return pod.containers ?? await ctx.ctrd.podContainers(pod.namespace, pod.pod);
}

async function waitFor(
  ctx: FreezerContext,
  id: string,
  ok: (s: TaskStatus) => boolean,
  timeoutMs: number,
): Promise<TaskStatus> {
  const until = ctx.now() + timeoutMs;
  for (;;) {
    const s = (await ctx.ctrd.state(id)).status;
    if (ok(s)) return s;
    if (ctx.now() > until) {
      throw new Error(`Container "${id}" stayed "${s}" for ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, ctx.pollMs));
  }
}

/** The pod's containers, which must not be none. */
async function runningContainers(ctx: FreezerContext, pod: PodRef): Promise<PodContainer[]> {
  const list = await containersOf(ctx, pod);
  if (list.length === 0) {
    throw new Error(
      `Cannot freeze pod "${pod.namespace}/${pod.pod}": it has no running container on this node`,
    );
  }
  return list;
}

/** Pauses each container; on any failure resumes those already paused. */
async function pauseAll(ctx: FreezerContext, pod: PodRef, list: PodContainer[]): Promise<void> {
  const paused: PodContainer[] = [];
  try {
    for (const c of list) {
      if ((await ctx.ctrd.state(c.id)).status !== "paused") await ctx.ctrd.pause(c.id);
      paused.push(c);
      await waitFor(ctx, c.id, (s) => s === "paused", 10_000);
    }
  } catch (err) {
    await resumeEach(ctx, paused);
    throw new Error(
      `Cannot freeze pod "${pod.namespace}/${pod.pod}": ${(err as Error).message}`,
    );
  }
}

async function resumeEach(ctx: FreezerContext, list: PodContainer[]): Promise<string[]> {
  const resumed: string[] = [];
  const errors: string[] = [];
  for (const c of list) {
    const s = (await ctx.ctrd.state(c.id)).status;
    if (s !== "paused" && s !== "pausing") continue;
    try {
      if (s === "pausing") await waitFor(ctx, c.id, (x) => x !== "pausing", 10_000);
      await ctx.ctrd.resume(c.id);
      resumed.push(c.id);
    } catch (err) {
      errors.push(`"${c.name}": ${(err as Error).message}`);
    }
  }
  if (errors.length) throw new Error(`Cannot thaw ${errors.join("; ")}`);
  return resumed;
}

/** Dumps each (paused) container, checking it is still paused afterwards. */
async function dumpAll(
  ctx: FreezerContext,
  pod: PodRef,
  list: PodContainer[],
  fopts: FreezeOptions,
): Promise<FrozenContainer[]> {
  const out: FrozenContainer[] = [];
  for (const c of list) {
    fopts.signal?.throwIfAborted();
    const t0 = ctx.now();
    const res = await ctx.dump(
      { namespace: pod.namespace, pod: pod.pod, container: c.name, id: c.id },
      {
        workDir: fopts.workDir,
        signal: fopts.signal,
        leaveRunning: true,
        timeoutSeconds: fopts.timeoutSeconds,
      },
    );
    out.push({
      ...c,
      archivePath: res.archivePath,
      ownsArchive: res.ownsArchive ?? false,
      dumpMs: ctx.now() - t0,
      runtime: res.runtime,
    });
    const after = (await ctx.ctrd.state(c.id)).status;
    if (after !== "paused") {
      throw new Error(
        `container "${c.name}" is "${after}" after its dump, not "paused": the runtime ` +
          "resumed it, so the checkpoint is not the container's final state",
      );
    }
  }
  return out;
}

async function pausePod(ctx: FreezerContext, pod: PodRef): Promise<PausedPod> {
  const list = await runningContainers(ctx, pod);
  const t0 = ctx.now();
  await pauseAll(ctx, pod, list);
  const frozenAt = ctx.now();
  return { containers: list, frozenAt, pauseMs: frozenAt - t0 };
}

async function freezePod(
  ctx: FreezerContext,
  pod: PodRef,
  fopts: FreezeOptions,
): Promise<FrozenPod> {
  const list = await runningContainers(ctx, pod);
  const t0 = ctx.now();
  await pauseAll(ctx, pod, list);
  const frozenAt = ctx.now();
  let containers: FrozenContainer[] = [];
  try {
    containers = await dumpAll(ctx, pod, list, fopts);
  } catch (err) {
    // Before hand-over the source must go on: thaw it, remove what was written.
    for (const c of containers) {
      if (c.ownsArchive) await Deno.remove(c.archivePath).catch(() => {});
    }
    const thawed = await resumeEach(ctx, list).then(() => "thawed", (e) => `NOT thawed: ${e}`);
    throw new Error(
      `Cannot checkpoint frozen pod "${pod.namespace}/${pod.pod}" (${thawed}): ${
        (err as Error).message
      }`,
    );
  }
  return {
    namespace: pod.namespace,
    pod: pod.pod,
    containers,
    frozenAt,
    pauseMs: frozenAt - t0,
    dumpMs: ctx.now() - frozenAt,
  };
}

async function killPod(
  ctx: FreezerContext,
  pod: PodRef,
  kopts: { timeoutMs?: number } = {},
): Promise<void> {
  const timeoutMs = kopts.timeoutMs ?? 30_000;
  const list = await containersOf(ctx, pod);
  // Every process gets SIGKILL while frozen; a frozen task only acts on it
  // when thawed, and then it dies before returning to user space.
  for (const c of list) {
    const s = (await ctx.ctrd.state(c.id)).status;
    if (s === "absent" || s === "stopped") continue;
    await ctx.ctrd.kill(c.id, { signal: SIGKILL, all: true });
  }
  for (const c of list) {
    // runc may have thawed the cgroup itself after the kill; the shim
    // still says "paused" until the exit is reaped, so resume is tried and
    // its refusal ignored.
    if ((await ctx.ctrd.state(c.id)).status === "paused") {
      await ctx.ctrd.resume(c.id).catch(() => {});
    }
  }
  for (const c of list) {
    await waitFor(ctx, c.id, (s) => s === "stopped" || s === "absent", timeoutMs).catch((err) => {
      throw new Error(
        `Cannot kill container "${c.name}" of pod "${pod.namespace}/${pod.pod}": ${
          (err as Error).message
        }`,
      );
    });
  }
}
