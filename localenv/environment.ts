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
import { deployInCluster } from "./in_cluster.ts";

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
   * Deploy lpm into the cluster from its own images (`kubectl apply -k`,
   * localenv/in_cluster.ts) instead of host processes; needs `nodes`.
   */
  inCluster?: boolean;
  /**
   * Worker nodes to start (node-a, node-b, ...) once "kube" and "registry"
   * run (both required); default 0.
   */
  nodes?: number;
}

const REPO_ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** What the start steps share: the info they fill in and the stop list they add to. */
interface Starting {
  info: EnvironmentInfo;
  dir: string;
  logDir: string;
  /** Records a started process (its pid goes into info.json). */
  track(p: ManagedProcess): void;
  /** Adds a stop step (run last added first). */
  onStop(stop: () => Promise<void>): void;
  progress(msg: string): void;
}

async function startKube(s: Starting, crdDir: string): Promise<void> {
  s.progress("starting etcd + kube-apiserver + kube-controller-manager + kube-scheduler");
  const cp = await startControlPlane(`${s.dir}/kube`, { logDir: s.logDir });
  cp.processes.forEach(s.track);
  s.onStop(cp.stop);
  s.info.kube = cp.info;
  const crds = await installCrds(cp.info.kubeconfig, crdDir);
  s.progress(`control plane ready at ${cp.info.server}; CRDs established: ${crds.length}`);
}

async function startServices(s: Starting, parts: Part[]): Promise<void> {
  const { dir, logDir } = s;
  if (parts.includes("minio")) {
    const m = await startMinio(`${dir}/minio`, { logDir });
    s.track(m.process);
    s.onStop(() => m.process.stop());
    s.info.minio = m.info;
    s.progress(`MinIO ready at ${m.info.endpoint} (bucket ${m.info.bucket})`);
  }
  if (parts.includes("registry")) {
    const r = await startRegistry(`${dir}/registry`, { logDir });
    s.track(r.process);
    s.onStop(() => r.process.stop());
    s.info.registry = r.info;
    s.progress(`registry ready at ${r.info.host}`);
  }
  if (parts.includes("docker")) {
    const d = await startDockerd(`${dir}/docker`, { logDir });
    s.track(d.process);
    s.info.extraDirs.push(d.info.execRoot);
    s.onStop(async () => {
      await removeAllContainers(d.info.socketPath);
      await d.process.stop(20_000);
    });
    s.info.docker = d.info;
    s.progress(`dockerd ready at ${d.info.socketPath}`);
  }
}

/**
 * Makes `dir` a mount point of its own with shared propagation, so that a
 * container mounting it with HostToContainer propagation (lpm's agent
 * in-cluster) sees the mounts made under it later (tmpfs emptyDirs): runc
 * refuses that propagation from a private mount, and "/" is private here.
 * The environment's clean-up unmounts it with everything under its dir.
 */
async function shareMounts(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const args of [["--bind", dir, dir], ["--make-rshared", dir]]) {
    const out = await new Deno.Command("mount", { args, stdout: "null", stderr: "piped" }).output();
    if (!out.success) {
      throw new Error(`mount ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
    }
  }
}

async function startNodesPart(
  s: Starting,
  count: number,
  opts: { sharedMounts?: boolean } = {},
): Promise<void> {
  const { info } = s;
  if (!info.kube || !info.registry) {
    throw new Error(`Nodes need the "kube" and "registry" parts (parts: ${info.parts.join(", ")})`);
  }
  if (opts.sharedMounts) await shareMounts(`${s.dir}/nodes`);
  s.progress(`starting ${count} node(s): kubelet + containerd each`);
  const n = await startNodes(`${s.dir}/nodes`, {
    count,
    kube: info.kube,
    registry: info.registry,
    logDir: s.logDir,
    onProgress: s.progress,
  });
  n.processes.forEach(s.track);
  s.onStop(n.stop);
  info.nodes = n.nodes;
  info.nodeImages = n.images;
}

/** lpm's processes, which can be restarted on their own (`cluster:lpm-restart`). */
function lpmPart(s: Starting): { launch(): Promise<LpmInfo>; restart(): Promise<LpmInfo> } {
  let stopLpm: (() => Promise<void>) | undefined;
  const launch = async (): Promise<LpmInfo> => {
    s.progress("starting lpm: an agent per node and the controller");
    const l = await startLpm(s.info, `${s.dir}/lpm`, { logDir: s.logDir });
    l.processes.forEach(s.track);
    if (!stopLpm) s.onStop(() => stopLpm?.() ?? Promise.resolve());
    stopLpm = l.stop;
    s.info.lpm = l.info;
    s.progress(
      `lpm ready: agents ${l.info.agents.map((a) => `${a.node}=${a.address}`).join(", ")}`,
    );
    return l.info;
  };
  const restart = async (): Promise<LpmInfo> => {
    if (!stopLpm) throw new Error("lpm does not run in this environment (start it with lpm)");
    s.progress("restarting lpm");
    const info = s.info;
    const old = new Set(info.lpm?.agents.map((a) => a.pid).concat(info.lpm.controller.pid));
    await stopLpm();
    info.pids = info.pids.filter((p) => !old.has(p));
    const l = await launch();
    await writeInfo(info);
    return l;
  };
  return { launch, restart };
}

function writeInfo(info: EnvironmentInfo): Promise<void> {
  return Deno.writeTextFile(`${info.dir}/info.json`, JSON.stringify(info, null, 2) + "\n");
}

/** Starts the requested parts; on failure stops what started and throws. */
export async function startEnvironment(opts: EnvironmentOptions = {}): Promise<Environment> {
  const parts = [...(opts.parts ?? ALL_PARTS)];
  const dir = opts.dir ?? await Deno.makeTempDir({ prefix: "lpm-env-" });
  const logDir = `${dir}/logs`;
  await Deno.mkdir(logDir, { recursive: true });
  const progress = opts.onProgress ?? (() => {});
  const info: EnvironmentInfo = { dir, logDir, parts, pids: [], extraDirs: [] };
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
  const starting: Starting = {
    info,
    dir,
    logDir,
    track: (p) => info.pids.push(p.pid),
    onStop: (fn) => stoppers.push(fn),
    progress,
  };
  try {
    // The control plane and the rest start side by side.
    const results = await Promise.allSettled([
      parts.includes("kube") ? startKube(starting, opts.crdDir ?? `${REPO_ROOT}/crds`) : undefined,
      startServices(starting, parts),
    ]);
    const failed = results.find((r) => r.status === "rejected") as
      | PromiseRejectedResult
      | undefined;
    if (failed) throw failed.reason;
    if (opts.nodes) {
      await startNodesPart(starting, opts.nodes, { sharedMounts: opts.inCluster });
    }
    const lpm = lpmPart(starting);
    if (opts.lpm) {
      if (!info.nodes?.length) throw new Error("lpm (agents + controller) needs nodes: set nodes");
      await lpm.launch();
    }
    if (opts.inCluster) {
      if (!info.nodes?.length) throw new Error("lpm in-cluster needs nodes: set nodes");
      progress("deploying lpm in-cluster: images, registry, kubectl apply -k");
      info.lpmInCluster = await deployInCluster(info, { onProgress: progress });
    }
    await writeInfo(info);
    return { info, stop, restartLpm: lpm.restart };
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
