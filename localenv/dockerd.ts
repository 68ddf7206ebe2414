/**
 * A Docker engine of the harness's own: its own data-root, exec-root, socket
 * and pidfile, experimental mode (checkpoints) and no bridge or iptables, so
 * it never touches a user's Docker or the host network. CRIU comes from the
 * bootstrap's wrapper, first in PATH.
 * @module
 */
import { type ManagedProcess, startProcess } from "./_process.ts";
import { waitFor } from "./_wait.ts";
import { tool, toolPath } from "./tools.ts";

/** Connection details of the harness dockerd. */
export interface DockerInfo {
  /** Unix socket path. */
  socketPath: string;
  /** data-root. */
  dataRoot: string;
  /** exec-root (kept short: containerd sockets live under it). */
  execRoot: string;
}

async function dockerPing(socketPath: string): Promise<boolean> {
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path: socketPath } });
  try {
    const r = await fetch("http://docker/_ping", { client });
    await r.body?.cancel();
    return r.ok;
  } catch {
    return false;
  } finally {
    client.close();
  }
}

/** Starts dockerd with every path under `dir` (the exec-root under /run/lpm). */
export async function startDockerd(
  dir: string,
  opts: { logDir: string },
): Promise<{ info: DockerInfo; process: ManagedProcess }> {
  const id = crypto.randomUUID().slice(0, 8);
  const execRoot = `/run/lpm/d-${id}`;
  const info: DockerInfo = {
    socketPath: `${dir}/docker.sock`,
    dataRoot: `${dir}/data`,
    execRoot,
  };
  await Deno.mkdir(info.dataRoot, { recursive: true });
  await Deno.mkdir(execRoot, { recursive: true });
  await Deno.writeTextFile(`${dir}/daemon.json`, "{}\n");
  const proc = startProcess("dockerd", [
    tool("dockerd"),
    `--data-root=${info.dataRoot}`,
    `--exec-root=${execRoot}`,
    `--host=unix://${info.socketPath}`,
    `--pidfile=${dir}/docker.pid`,
    `--config-file=${dir}/daemon.json`,
    "--experimental",
    "--bridge=none",
    "--iptables=false",
    "--ip-masq=false",
    "--storage-driver=overlay2",
    "--userland-proxy=false",
    "--log-level=warn",
  ], { logPath: `${opts.logDir}/dockerd.log`, env: { PATH: toolPath() } });
  try {
    await waitFor(() => dockerPing(info.socketPath), {
      what: "dockerd /_ping",
      timeoutMs: 60_000,
      exited: proc.exited,
    });
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return { info, process: proc };
}

/** Removes every container of the harness dockerd (before stopping it). */
export async function removeAllContainers(socketPath: string): Promise<void> {
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path: socketPath } });
  try {
    const r = await fetch("http://docker/containers/json?all=1", { client });
    const list = await r.json() as { Id: string }[];
    for (const c of list) {
      const d = await fetch(`http://docker/containers/${c.Id}?force=1&v=1`, {
        method: "DELETE",
        client,
      });
      await d.body?.cancel();
    }
  } catch {
    // dockerd already gone: nothing to remove through it
  } finally {
    client.close();
  }
}
