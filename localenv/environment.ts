/**
 * The local environment: the real parts every integration test and the demo
 * use, started on free loopback ports with all data in one temp dir, and
 * stopped and cleaned as a whole (processes, mounts, directories).
 * @module
 */
import type { ManagedProcess } from "./_process.ts";
import { installCrds, startControlPlane } from "./control_plane.ts";
import { startMinio } from "./minio.ts";
import { startRegistry } from "./registry.ts";
import { startLpm } from "./lpm.ts";
import { ALL_PARTS, type EnvironmentInfo, type LpmInfo, type Part } from "./info.ts";
import { removeAllContainers, startDockerd } from "./dockerd.ts";
import { startNodes } from "./node.ts";

/** A running environment. */
export interface Environment {
  /** What runs and where. */
  info: EnvironmentInfo;
  /** Stops every part and removes all its files; safe to call twice. */
  stop(): Promise<void>;
  /**
   * Stops lpm's agents and controller and starts them again from the current
   * code (new ports: `info.lpm` is updated). Throws when lpm does not run.
   */
  restartLpm(): Promise<LpmInfo>;
}

/** Options for {@linkcode startEnvironment}. */
export interface EnvironmentOptions {
  /** Parts to start (default: all). */
  parts?: readonly Part[];
  /** Root dir; default a new temp dir. Removed on stop. */
  dir?: string;
  /** Directory of CRDs to install (default: the repo's `crds/`). */
  crdDir?: string;
  /** Progress callback. */
  onProgress?: (msg: string) => void;
  /** Also run lpm: an agent per node and the controller (needs `nodes`). */
  lpm?: boolean;
  /**
   * Worker nodes to start (node-a, node-b, ...) once "kube" and "registry"
   * run (both required); default 0.
   */
  nodes?: number;
}

const REPO_ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** Starts the requested parts; on failure stops what started and throws. */
export async function startEnvironment(opts: EnvironmentOptions = {}): Promise<Environment> {
  const parts = [...(opts.parts ?? ALL_PARTS)];
  const dir = opts.dir ?? await Deno.makeTempDir({ prefix: "lpm-env-" });
  const logDir = `${dir}/logs`;
  await Deno.mkdir(logDir, { recursive: true });
  const progress = opts.onProgress ?? (() => {});
  const info: EnvironmentInfo = { dir, logDir, parts, pids: [], extraDirs: [] };
  const procs: ManagedProcess[] = [];
  const stoppers: (() => Promise<void>)[] = [];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    for (const s of [...stoppers].reverse()) {
      try {
        await s();
      } catch (err) {
        progress(`warning: ${(err as Error).message}`);
      }
    }
    await cleanupFiles(info);
  };
  const track = (p: ManagedProcess) => {
    procs.push(p);
    info.pids.push(p.pid);
  };
  try {
    const startKube = async () => {
      if (!parts.includes("kube")) return;
      progress("starting etcd + kube-apiserver + kube-controller-manager + kube-scheduler");
      const cp = await startControlPlane(`${dir}/kube`, { logDir });
      cp.processes.forEach(track);
      stoppers.push(cp.stop);
      info.kube = cp.info;
      const crds = await installCrds(cp.info.kubeconfig, opts.crdDir ?? `${REPO_ROOT}/crds`);
      progress(`control plane ready at ${cp.info.server}; CRDs established: ${crds.length}`);
    };
    const startOthers = async () => {
      if (parts.includes("minio")) {
        const m = await startMinio(`${dir}/minio`, { logDir });
        track(m.process);
        stoppers.push(() => m.process.stop());
        info.minio = m.info;
        progress(`MinIO ready at ${m.info.endpoint} (bucket ${m.info.bucket})`);
      }
      if (parts.includes("registry")) {
        const r = await startRegistry(`${dir}/registry`, { logDir });
        track(r.process);
        stoppers.push(() => r.process.stop());
        info.registry = r.info;
        progress(`registry ready at ${r.info.host}`);
      }
      if (parts.includes("docker")) {
        const d = await startDockerd(`${dir}/docker`, { logDir });
        track(d.process);
        info.extraDirs.push(d.info.execRoot);
        stoppers.push(async () => {
          await removeAllContainers(d.info.socketPath);
          await d.process.stop(20_000);
        });
        info.docker = d.info;
        progress(`dockerd ready at ${d.info.socketPath}`);
      }
    };
    // The control plane and the rest start side by side.
    const results = await Promise.allSettled([startKube(), startOthers()]);
    const failed = results.find((r) => r.status === "rejected") as
      | PromiseRejectedResult
      | undefined;
    if (failed) throw failed.reason;
    if (opts.nodes) {
      if (!info.kube || !info.registry) {
        throw new Error(`Nodes need the "kube" and "registry" parts (parts: ${parts.join(", ")})`);
      }
      progress(`starting ${opts.nodes} node(s): kubelet + containerd each`);
      const n = await startNodes(`${dir}/nodes`, {
        count: opts.nodes,
        kube: info.kube,
        registry: info.registry,
        logDir,
        onProgress: progress,
      });
      n.processes.forEach(track);
      stoppers.push(n.stop);
      info.nodes = n.nodes;
      info.nodeImages = n.images;
    }
    let stopLpm: (() => Promise<void>) | undefined;
    const launchLpm = async (): Promise<LpmInfo> => {
      progress("starting lpm: an agent per node and the controller");
      const l = await startLpm(info, `${dir}/lpm`, { logDir });
      l.processes.forEach(track);
      stopLpm = l.stop;
      info.lpm = l.info;
      progress(
        `lpm ready: agents ${l.info.agents.map((a) => `${a.node}=${a.address}`).join(", ")}`,
      );
      return l.info;
    };
    if (opts.lpm) {
      if (!info.nodes?.length) throw new Error("lpm (agents + controller) needs nodes: set nodes");
      await launchLpm();
      stoppers.push(() => stopLpm?.() ?? Promise.resolve());
    }
    const writeInfo = () =>
      Deno.writeTextFile(`${dir}/info.json`, JSON.stringify(info, null, 2) + "\n");
    await writeInfo();
    const restartLpm = async (): Promise<LpmInfo> => {
      if (!stopLpm) throw new Error("lpm does not run in this environment (start it with lpm)");
      progress("restarting lpm");
      const old = new Set(info.lpm?.agents.map((a) => a.pid).concat(info.lpm.controller.pid));
      await stopLpm();
      info.pids = info.pids.filter((p) => !old.has(p));
      const l = await launchLpm();
      await writeInfo();
      return l;
    };
    return { info, stop, restartLpm };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Unmounts whatever is still mounted under the environment's dirs, then removes them. */
async function cleanupFiles(info: EnvironmentInfo): Promise<void> {
  const roots = [info.dir, ...info.extraDirs];
  const mounts = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
    .map((l) => l.split(" ")[4])
    .filter((m) => m && roots.some((r) => m === r || m.startsWith(r + "/")))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) {
    await new Deno.Command("umount", { args: ["-l", m], stdout: "null", stderr: "null" }).output();
  }
  for (const r of roots) {
    await Deno.remove(r, { recursive: true }).catch(() => {});
  }
}
