/**
 * Fault injection in a running local environment (the chaos tests,
 * tests/chaos/): `kill`, `stop`, `start` and `restart` of a named part. Every
 * part is a process localenv started (localenv/_process.ts), which records
 * beside its log how it was started (argv, whole environment, cwd) and which
 * pid runs now; a restart starts the same command line again, in a session of
 * its own, appending to the same log, and updates that record, so the
 * environment's stop (`cluster:down`, the test run's end) stops the new copy
 * too. The environment may run in another process (`deno task test`,
 * `cluster:up`): the record is the only state shared.
 *
 * What a part's death leaves behind is the real thing's: a killed containerd
 * leaves its shims (and their tasks) running, as a crashed containerd does; a
 * killed kubelet leaves its pods running; a stopped MinIO or registry refuses
 * connections until started again.
 * @module
 */
import {
  isAlive,
  killGroup,
  readProcessRecord,
  spawnInSession,
  stopGroup,
  tailLog,
  writeProcessRecord,
} from "./_process.ts";
import { tcpOpen, waitFor } from "./_wait.ts";
import { ctr } from "./containerd.ts";
import { kubectl } from "./control_plane.ts";
import type { EnvironmentInfo } from "./info.ts";

/**
 * A part of the local environment by name: `controller`, `kube-apiserver`,
 * `etcd`, `registry`, `minio`, or a node's `agent:<node>`,
 * `kubelet:<node>`, `containerd:<node>`.
 */
export type FaultPart =
  | "controller"
  | "kube-apiserver"
  | "etcd"
  | "registry"
  | "minio"
  | `agent:${string}`
  | `kubelet:${string}`
  | `containerd:${string}`;

/** Fault injection on one environment; see the module doc. */
export interface Faults {
  /** SIGKILL to the part's process group; it stays down until `start`. */
  kill(part: FaultPart): Promise<void>;
  /** SIGTERM (SIGKILL after `graceMs`, default 10 s); it stays down until `start`. */
  stop(part: FaultPart, opts?: { graceMs?: number }): Promise<void>;
  /** Starts a part that is down as localenv started it, and waits until it serves. */
  start(part: FaultPart): Promise<void>;
  /** `kill` (or `stop` with `graceful`), `downMs` later (default 0) `start`. */
  restart(part: FaultPart, opts?: { downMs?: number; graceful?: boolean }): Promise<void>;
  /** The pid running the part now, or undefined while it is down. */
  pid(part: FaultPart): number | undefined;
}

/** The log file name (without `.log`) localenv gives part `part`. */
export function partLogName(part: FaultPart): string {
  const [kind, node] = part.split(":");
  switch (kind) {
    case "agent":
      return `agent-${node}`;
    case "kubelet":
      return `${node}-kubelet`;
    case "containerd":
      return `${node}-containerd`;
    default:
      return kind;
  }
}

/** Fault injection in the environment `info` describes. */
export function environmentFaults(info: EnvironmentInfo): Faults {
  const logPath = (part: FaultPart) => `${info.logDir}/${partLogName(part)}.log`;
  const record = (part: FaultPart) => {
    const rec = readProcessRecord(logPath(part));
    if (!rec) {
      throw new Error(`The environment at "${info.dir}" has no part "${part}" (no process record)`);
    }
    return rec;
  };
  const live = (part: FaultPart) => {
    const pid = record(part).pid;
    return pid && isAlive(pid) ? pid : undefined;
  };
  const down = async (part: FaultPart, how: (pid: number) => Promise<void>) => {
    const rec = record(part);
    if (rec.pid && isAlive(rec.pid)) await how(rec.pid);
    writeProcessRecord(logPath(part), { ...rec, pid: 0 });
  };
  const faults: Faults = {
    pid: live,
    kill: (part) =>
      down(part, async (pid) => {
        killGroup(pid, "SIGKILL");
        await waitFor(() => !isAlive(pid), { what: `"${part}" (pid ${pid}) to die` });
      }),
    stop: (part, opts = {}) => down(part, (pid) => stopGroup(pid, opts.graceMs)),
    async start(part) {
      if (live(part)) throw new Error(`Cannot start "${part}": it runs (pid ${live(part)})`);
      const rec = record(part);
      // A part that exits before it serves is started again (at most
      // START_ATTEMPTS times): a server restarted right after a kill can find
      // its port or its lock not yet released by the dead copy's last
      // children. The final error carries the log's tail.
      for (let attempt = 1;; attempt++) {
        const child = spawnInSession(rec.argv, { env: rec.env, cwd: rec.cwd, clearEnv: true });
        // The environment stops it (through the record), not this process.
        child.status.catch(() => {});
        child.unref();
        writeProcessRecord(logPath(part), { ...rec, pid: child.pid });
        if (await serving(info, part, child.pid)) return;
        writeProcessRecord(logPath(part), { ...rec, pid: 0 });
        if (attempt >= START_ATTEMPTS) {
          throw new Error(
            `"${part}" exited before it served, ${attempt} starts in a row; its log ends:\n` +
              await tailLog(logPath(part), 15),
          );
        }
        await new Promise((r) => setTimeout(r, 1000 * attempt));
      }
    },
    async restart(part, opts = {}) {
      await (opts.graceful ? faults.stop(part) : faults.kill(part));
      if (opts.downMs) await new Promise((r) => setTimeout(r, opts.downMs));
      await faults.start(part);
    },
  };
  return faults;
}

async function httpOk(url: string): Promise<boolean> {
  const r = await fetch(url).catch(() => undefined);
  await r?.body?.cancel();
  return r?.ok ?? false;
}

/** How often `start` starts a part that exits before it serves. */
const START_ATTEMPTS = 3;

/**
 * Waits until a started part serves (the check localenv's start uses): true
 * once it does, false as soon as its process is gone.
 */
async function serving(info: EnvironmentInfo, part: FaultPart, pid: number): Promise<boolean> {
  const [kind, nodeName] = part.split(":");
  const node = info.nodes?.find((n) => n.name === nodeName);
  const check: Record<string, () => Promise<boolean>> = {
    "controller": () => httpOk(`http://127.0.0.1:${info.lpm!.controller.healthPort}/readyz`),
    "agent": () => {
      const a = info.lpm!.agents.find((x) => x.node === nodeName)!;
      return tcpOpen(Number(a.address.split(":").at(-1)));
    },
    "registry": () => httpOk(`http://${info.registry!.host}/v2/`),
    "minio": () => httpOk(`${info.minio!.endpoint}/minio/health/ready`),
    "kube-apiserver": () =>
      kubectl(info.kube!.kubeconfig, ["get", "--raw", "/readyz"]).then(() => true, () => false),
    "etcd": () => Promise.resolve(true),
    "containerd": () => ctr(node!.containerdSocket, ["version"]).then(() => true, () => false),
    "kubelet": () => httpOk(`http://127.0.0.1:${node!.kubeletHealthzPort}/healthz`),
  };
  const ok = check[kind];
  if (!ok) throw new Error(`Unknown part "${part}"`);
  const outcome = await waitFor(async () => {
    if (!isAlive(pid)) return "exited";
    return await ok() && "serving";
  }, { what: `"${part}" (pid ${pid}) to serve again`, timeoutMs: 90_000, intervalMs: 200 });
  return outcome === "serving";
}
