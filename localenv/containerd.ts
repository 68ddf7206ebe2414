/**
 * One containerd per node: its own root, state, socket and config, with the
 * CRI plugin on cgroupfs, runc + the CRIU wrapper for checkpoint/restore, the
 * plain-HTTP harness registry configured through `config_path` hosts files,
 * and the node's own CNI config.
 * @module
 */
import { type ManagedProcess, startProcess, tailLog } from "./_process.ts";
import { waitFor } from "./_wait.ts";
import { tool, toolPath } from "./tools.ts";

/** Where a node's containerd keeps its files and listens. */
export interface ContainerdInfo {
  /** CRI/containerd gRPC socket (unix path). */
  socket: string;
  /** containerd `root` (content, snapshots, metadata). */
  root: string;
  /** containerd `state` (task bundles, fifos, sandbox netns mounts). */
  state: string;
  /** runc's state root for this containerd's containers. */
  runcRoot: string;
  /** The config file it runs with. */
  config: string;
}

/** Options for {@linkcode startContainerd}. */
export interface ContainerdOptions {
  /** Directory of logs. */
  logDir: string;
  /** Log file name stem (e.g. "node-a-containerd"). */
  name: string;
  /** host:port of the plain-HTTP harness registry. */
  registryHost: string;
  /** Pause (sandbox) image reference. */
  sandboxImage: string;
  /** Directory holding the node's CNI conflist. */
  cniConfDir: string;
}

/** containerd 2.x config (version 3) for one node. */
export function containerdConfig(dir: string, opts: ContainerdOptions): string {
  const q = (s: string) => JSON.stringify(s);
  return `version = 3
root = ${q(`${dir}/root`)}
state = ${q(`${dir}/state`)}
temp = ${q(`${dir}/tmp`)}
imports = []
disabled_plugins = [
  "io.containerd.nri.v1.nri",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.differ.v1.erofs",
  "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = ${q(`${dir}/containerd.sock`)}

[ttrpc]
  address = ${q(`${dir}/containerd.sock.ttrpc`)}

[debug]
  level = "info"

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = "overlayfs"
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = ${q(opts.sandboxImage)}
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = ${q(`${dir}/certs.d`)}

  [plugins.'io.containerd.cri.v1.runtime']
    disable_apparmor = true
    # This VM withholds CAP_SYS_RESOURCE, so lowering oom_score_adj (the pause
    # container asks for -998) fails in runc; clamp to containerd's own value.
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    enable_cdi = false
    enable_criu = true
    enable_experimental_restore_via_create = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = "runc"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = ${q(tool("runc"))}
          Root = ${q(`${dir}/state/runc`)}
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ["/usr/lib/cni"]
      conf_dir = ${q(opts.cniConfDir)}
      max_conf_num = 1

  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"

  [plugins.'io.containerd.internal.v1.opt']
    path = ${q(`${dir}/opt`)}

  [plugins.'io.containerd.transfer.v1.local']
    config_path = ${q(`${dir}/certs.d`)}
`;
}

/** hosts.toml that sends pulls of `host` over plain HTTP to itself. */
export function registryHostsToml(host: string): string {
  return `server = "http://${host}"

[host."http://${host}"]
  capabilities = ["pull", "resolve", "push"]
  skip_verify = true
`;
}

/**
 * Writes the config into `dir` and starts containerd with the tool links first
 * in PATH (runc must find the CRIU wrapper; the shims inherit the PATH).
 */
export async function startContainerd(
  dir: string,
  opts: ContainerdOptions,
): Promise<{ info: ContainerdInfo; process: ManagedProcess }> {
  for (const d of ["root", "state", "tmp", "opt", `certs.d/${opts.registryHost}`]) {
    await Deno.mkdir(`${dir}/${d}`, { recursive: true });
  }
  const config = `${dir}/config.toml`;
  await Deno.writeTextFile(config, containerdConfig(dir, opts));
  await Deno.writeTextFile(
    `${dir}/certs.d/${opts.registryHost}/hosts.toml`,
    registryHostsToml(opts.registryHost),
  );
  const info: ContainerdInfo = {
    socket: `${dir}/containerd.sock`,
    root: `${dir}/root`,
    state: `${dir}/state`,
    runcRoot: `${dir}/state/runc`,
    config,
  };
  const proc = startProcess(opts.name, [tool("containerd"), "--config", config], {
    logPath: `${opts.logDir}/${opts.name}.log`,
    env: { PATH: toolPath(), TMPDIR: `${dir}/tmp` },
  });
  try {
    await waitFor(() => ctrOk(info.socket), {
      what: `${opts.name} socket ${info.socket}`,
      timeoutMs: 30_000,
      exited: proc.exited,
    });
  } catch (err) {
    const log = await tailLog(proc.logPath, 15);
    await proc.stop();
    throw new Error(`Cannot start ${opts.name}: ${(err as Error).message}\n${log}`);
  }
  return { info, process: proc };
}

async function ctrOk(socket: string): Promise<boolean> {
  const out = await ctr(socket, ["version"]).then(() => true, () => false);
  return out;
}

/** Runs `ctr --address socket args...` in namespace k8s.io; throws with stderr on failure. */
export async function ctr(socket: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(tool("ctr"), {
    args: ["--address", socket, "--namespace", "k8s.io", ...args],
    stdout: "piped",
    stderr: "piped",
    env: { PATH: toolPath() },
  }).output();
  if (!out.success) {
    throw new Error(
      `ctr ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

/** The tasks of a node's containerd (`ctr tasks ls`): container id, pid and status (RUNNING, PAUSED...). */
export async function ctrTasks(
  socket: string,
): Promise<{ id: string; pid: number; status: string }[]> {
  const out = await ctr(socket, ["tasks", "ls"]);
  return out.split("\n").slice(1).filter(Boolean).map((l) => {
    const [id, pid, status] = l.trim().split(/\s+/);
    return { id, pid: Number(pid), status };
  });
}
