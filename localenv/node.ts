/**
 * Real worker nodes on this one machine: per node a containerd (CRI, runc,
 * CRIU) and a kubelet registered with the harness control plane, all in the
 * host network namespace on ports of their own, each with its own root dirs,
 * cgroup root and pod bridge. The pause and busybox images are built locally
 * and pushed to the harness registry. See docs/nodes.md.
 * @module
 */
import { killGroup, type ManagedProcess, tailLog } from "./_process.ts";
import { waitFor } from "./_wait.ts";
import { type ControlPlaneInfo, kubectl } from "./control_plane.ts";
import type { RegistryInfo } from "./registry.ts";
import { ctr, startContainerd } from "./containerd.ts";
import { startKubelet } from "./kubelet.ts";
import { addNodeAddress, removeBridge, removeNodeAddress, writeNodeNetwork } from "./_cni.ts";
import { removeCgroupRoot } from "./kubelet.ts";
import { buildBusyboxRootfsTar } from "./images.ts";
import { pushImage } from "./registry_push.ts";

/** One running node (serializable, part of the environment's info). */
export interface NodeInfo {
  /** Node name (node-a, node-b, ...). */
  name: string;
  /** Node IP (InternalIP): a /32 on the host's lo, see docs/nodes.md. */
  ip: string;
  /** Kubelet HTTPS port on `ip`. */
  kubeletPort: number;
  /** Kubelet healthz port on 127.0.0.1. */
  kubeletHealthzPort: number;
  /** Kubelet `--root-dir`. */
  rootDir: string;
  /** Where the kubelet checkpoint API writes archives. */
  checkpointDir: string;
  /** Pod logs directory of this kubelet. */
  podLogsDir: string;
  /** Kubeconfig with this node's identity (system:node:<name>). */
  kubeconfig: string;
  /** cgroup root of the kubelet and its pods (cgroup v1, cgroupfs). */
  cgroupRoot: string;
  /** containerd socket (CRI endpoint is `unix://` + this). */
  containerdSocket: string;
  /** containerd root. */
  containerdRoot: string;
  /** containerd state. */
  containerdState: string;
  /** Linux bridge of this node's pods. */
  bridge: string;
  /** Pod subnet of this node. */
  podSubnet: string;
  /** Directory of everything the node owns. */
  dir: string;
}

/** Images the nodes use, all in the harness registry. */
export interface NodeImages {
  /** Sandbox (pause) image. */
  pause: string;
  /** busybox-static workload image (`/bin/sh`, sleep, echo...). */
  busybox: string;
}

/** Nodes started by {@linkcode startNodes}. */
export interface Nodes {
  /** One entry per node. */
  nodes: NodeInfo[];
  /** Images in the registry. */
  images: NodeImages;
  /** Processes (containerd and kubelet of each node). */
  processes: ManagedProcess[];
  /** Removes pods, stops kubelets and containerds, kills shims, removes cgroups and bridges. */
  stop(): Promise<void>;
}

/** Options for {@linkcode startNodes}. */
export interface NodesOptions {
  /** How many nodes (named node-a, node-b, ...). */
  count: number;
  /** Control plane they register with. */
  kube: ControlPlaneInfo;
  /** Registry serving the images. */
  registry: RegistryInfo;
  /** Directory of logs. */
  logDir: string;
  /** Progress callback. */
  onProgress?: (msg: string) => void;
}

/** The node name for index `i`: node-a, node-b, ... */
export function nodeName(i: number): string {
  return `node-${String.fromCharCode(97 + i)}`;
}

/** Builds the pause and busybox images and pushes them to the registry. */
export async function pushNodeImages(registryHost: string, dir: string): Promise<NodeImages> {
  await Deno.mkdir(dir, { recursive: true });
  const rootfs = await buildBusyboxRootfsTar(`${dir}/busybox-rootfs.tar`);
  // The sandbox only holds the pod's namespaces; containerd stops it with SIGKILL.
  const pause = await pushImage(registryHost, "lpm/pause:1", {
    layers: [{ path: rootfs }],
    config: { Entrypoint: ["/bin/sleep", "2147483647"], WorkingDir: "/" },
  });
  const busybox = await pushImage(registryHost, "lpm/busybox:1", {
    layers: [{ path: rootfs }],
    config: { Cmd: ["/bin/sh"], Env: ["PATH=/bin"], WorkingDir: "/" },
  });
  await Deno.remove(rootfs);
  return { pause: pause.reference, busybox: busybox.reference };
}

/** Starts `opts.count` nodes under `dir` and waits until every one is Ready. */
export async function startNodes(dir: string, opts: NodesOptions): Promise<Nodes> {
  const progress = opts.onProgress ?? (() => {});
  const id = Array.from(
    crypto.getRandomValues(new Uint8Array(3)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const nodes: NodeInfo[] = [];
  const processes: ManagedProcess[] = [];
  const perNode: { info: NodeInfo; containerd?: ManagedProcess; kubelet?: ManagedProcess }[] = [];
  let images: NodeImages | undefined;
  const stop = async () => {
    await Promise.all(perNode.map((n) => stopNode(n)));
    await removeDevicePluginSocket();
  };
  try {
    images = await pushNodeImages(opts.registry.host, `${dir}/images`);
    progress(`node images pushed: ${images.pause}, ${images.busybox}`);
    // allSettled: on a failure, every node must be done starting before stop() runs.
    const started = await Promise.allSettled(Array.from({ length: opts.count }, async (_, i) => {
      const name = nodeName(i);
      const nodeDir = `${dir}/${name}`;
      const letter = String.fromCharCode(97 + i);
      const net = await writeNodeNetwork(`${nodeDir}/cni`, {
        bridge: `lpm${id}${letter}`,
        subnet: `10.244.${i + 1}.0/24`,
        name: `lpm-${name}`,
      });
      const entry: (typeof perNode)[number] = {
        info: {
          name,
          ip: "",
          kubeletPort: 0,
          kubeletHealthzPort: 0,
          rootDir: "",
          checkpointDir: "",
          podLogsDir: "",
          kubeconfig: "",
          cgroupRoot: `/lpm-${id}-${name}`,
          containerdSocket: "",
          containerdRoot: "",
          containerdState: "",
          bridge: net.bridge,
          podSubnet: net.subnet,
          dir: nodeDir,
        },
      };
      perNode.push(entry);
      entry.info.ip = await addNodeAddress();
      const c = await startContainerd(`${nodeDir}/containerd`, {
        logDir: opts.logDir,
        name: `${name}-containerd`,
        registryHost: opts.registry.host,
        sandboxImage: images!.pause,
        cniConfDir: net.confDir,
      });
      entry.containerd = c.process;
      processes.push(c.process);
      Object.assign(entry.info, {
        containerdSocket: c.info.socket,
        containerdRoot: c.info.root,
        containerdState: c.info.state,
      });
      const k = await startKubelet(`${nodeDir}/kubelet`, {
        nodeName: name,
        kube: opts.kube,
        runtimeSocket: c.info.socket,
        nodeIp: entry.info.ip,
        cgroupRoot: entry.info.cgroupRoot,
        logDir: opts.logDir,
      });
      entry.kubelet = k.process;
      processes.push(k.process);
      Object.assign(entry.info, {
        kubeletPort: k.info.port,
        kubeletHealthzPort: k.info.healthzPort,
        rootDir: k.info.rootDir,
        checkpointDir: k.info.checkpointDir,
        podLogsDir: k.info.podLogsDir,
        kubeconfig: k.info.kubeconfig,
      });
      await waitFor(() => nodeReady(opts.kube.kubeconfig, name), {
        what: `node "${name}" Ready`,
        timeoutMs: 120_000,
        intervalMs: 500,
        exited: Promise.race([c.process.exited, k.process.exited]),
      }).catch(async (err) => {
        throw new Error(
          `${(err as Error).message}\n--- ${name} kubelet:\n${await tailLog(
            k.process.logPath,
            15,
          )}`,
        );
      });
      progress(`${name} Ready (kubelet ${k.info.ip}:${k.info.port}, containerd ${c.info.socket})`);
    }));
    const failed = started.find((r) => r.status === "rejected") as
      | PromiseRejectedResult
      | undefined;
    if (failed) throw failed.reason;
    nodes.push(...perNode.map((n) => n.info).sort((a, b) => a.name.localeCompare(b.name)));
    return { nodes, images, processes, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function nodeReady(kubeconfig: string, name: string): Promise<boolean> {
  const out = await kubectl(kubeconfig, ["get", "node", name, "-o", "json"]);
  const node = JSON.parse(out);
  return (node.status?.conditions ?? []).some((c: { type: string; status: string }) =>
    c.type === "Ready" && c.status === "True"
  );
}

/**
 * Stops one node without waiting on pod grace periods: stops the kubelet,
 * then through containerd kills (SIGKILL) and deletes every task and container
 * (pods and their sandboxes), kills leftover shims, stops containerd, unmounts
 * what is mounted under the node (rootfs, netns, tmpfs), and removes the cgroup
 * root, the bridge, the node address and the kubelet's log symlinks.
 */
async function stopNode(
  n: { info: NodeInfo; containerd?: ManagedProcess; kubelet?: ManagedProcess },
): Promise<void> {
  const socket = n.info.containerdSocket;
  await n.kubelet?.stop();
  const shimSockets = await shimSocketPaths(n.info.containerdState);
  let ids: string[] = [];
  if (n.containerd) {
    ids = await ctr(socket, ["containers", "ls", "-q"]).then(
      (o) => o.split("\n").filter(Boolean),
      () => [] as string[],
    );
    await Promise.all(ids.map(async (cid) => {
      await ctr(socket, ["tasks", "kill", "-a", "-s", "SIGKILL", cid]).catch(() => {});
      await waitFor(
        () =>
          ctr(socket, ["tasks", "delete", cid]).then(
            () => true,
            (e) => /not found/.test(e.message),
          ),
        { what: `task ${cid} deleted`, timeoutMs: 5_000 },
      ).catch(() => {});
      await ctr(socket, ["containers", "delete", cid]).catch(() => {});
    }));
    await killShims(socket);
    await n.containerd.stop();
  }
  await killShims(socket);
  for (const s of shimSockets) await Deno.remove(s).catch(() => {});
  await removeCniCache(ids);
  await unmountUnder(n.info.dir);
  await removeCgroupRoot(n.info.cgroupRoot);
  await removeBridge(n.info.bridge);
  if (n.info.ip) await removeNodeAddress(n.info.ip);
  await removeLogSymlinks(n.info.podLogsDir);
}

/** Lazily unmounts everything mounted under `dir`, deepest first. */
async function unmountUnder(dir: string): Promise<void> {
  const mounts = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
    .map((l) => l.split(" ")[4])
    .filter((m) => m && m.startsWith(dir + "/"))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) {
    await new Deno.Command("umount", { args: ["-l", m], stdout: "null", stderr: "null" }).output();
  }
}

/** Sockets of this containerd's shims (under /run/containerd/s), from each task bundle. */
async function shimSocketPaths(state: string): Promise<string[]> {
  const paths: string[] = [];
  const base = `${state}/io.containerd.runtime.v2.task/k8s.io`;
  try {
    for await (const e of Deno.readDir(base)) {
      for (const f of ["bootstrap.json", "address"]) {
        const text = await Deno.readTextFile(`${base}/${e.name}/${f}`).catch(() => "");
        const m = text.match(/unix:\/\/(\/[^"\s]+)/);
        if (m) paths.push(m[1]);
      }
    }
  } catch {
    // no tasks
  }
  return paths;
}

/**
 * libcni caches each attachment's result in /var/lib/cni/results (not
 * configurable through containerd); the forced teardown skips CNI DEL, so drop
 * the entries of this node's sandboxes.
 */
async function removeCniCache(containerIds: string[]): Promise<void> {
  if (containerIds.length === 0) return;
  const dir = "/var/lib/cni/results";
  try {
    for await (const e of Deno.readDir(dir)) {
      if (containerIds.some((id) => e.name.includes(id))) {
        await Deno.remove(`${dir}/${e.name}`).catch(() => {});
      }
    }
  } catch {
    // no cache
  }
}

/**
 * Every kubelet's device manager listens on the fixed path
 * /var/lib/kubelet/device-plugins/kubelet.sock (no flag moves it); once no
 * kubelet answers there, remove it and the directories if they are empty.
 */
async function removeDevicePluginSocket(): Promise<void> {
  const sock = "/var/lib/kubelet/device-plugins/kubelet.sock";
  try {
    const c = await Deno.connect({ transport: "unix", path: sock });
    c.close();
    return; // another kubelet (another environment) still serves it
  } catch {
    await Deno.remove(sock).catch(() => {});
  }
  await Deno.remove("/var/lib/kubelet/device-plugins").catch(() => {});
  await Deno.remove("/var/lib/kubelet").catch(() => {});
}

/** Kills shims serving this containerd (they run in process groups of their own). */
async function killShims(socket: string): Promise<void> {
  if (!socket) return;
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const cmd = await Deno.readTextFile(`/proc/${e.name}/cmdline`).catch(() => "");
    const argv = cmd.split("\0");
    if (!argv[0]?.endsWith("containerd-shim-runc-v2")) continue;
    const i = argv.indexOf("-address");
    if (i >= 0 && argv[i + 1] === socket) {
      killGroup(Number(e.name), "SIGKILL");
      try {
        Deno.kill(Number(e.name), "SIGKILL");
      } catch {
        // gone
      }
    }
  }
}

/** The kubelet links each container log into /var/log/containers; drop ours. */
async function removeLogSymlinks(podLogsDir: string): Promise<void> {
  if (!podLogsDir) return;
  try {
    for await (const e of Deno.readDir("/var/log/containers")) {
      const p = `/var/log/containers/${e.name}`;
      const target = await Deno.readLink(p).catch(() => "");
      if (target.startsWith(podLogsDir + "/")) await Deno.remove(p).catch(() => {});
    }
  } catch {
    // no such dir
  }
}
