/**
 * One kubelet per node, in the host network namespace on an address and port
 * of its own:
 * client certificate `system:node:<name>` from the control plane's CA, a
 * serving certificate for the node IP (the API server verifies kubelets with
 * that CA), client-CA authentication, Webhook authorization, cgroupfs under a
 * cgroup root of its own, and everything else it writes under its root dir.
 * @module
 */
import { type ManagedProcess, startProcess, tailLog } from "./_process.ts";
import { freePort, tcpOpen, waitFor } from "./_wait.ts";
import { Pki } from "./pki.ts";
import { writeKubeconfig } from "./kubeconfig.ts";
import { tool, toolPath } from "./tools.ts";
import type { ControlPlaneInfo } from "./control_plane.ts";

/** Where a node's kubelet listens and keeps its files. */
export interface KubeletInfo {
  /** Node IP the kubelet listens on and reports as InternalIP. */
  ip: string;
  /** Kubelet HTTPS port on `ip`. */
  port: number;
  /** Healthz port on 127.0.0.1. */
  healthzPort: number;
  /** `--root-dir` (pods, volumes, checkpoints/). */
  rootDir: string;
  /** Where the checkpoint API writes archives. */
  checkpointDir: string;
  /** Pod logs directory. */
  podLogsDir: string;
  /** The kubelet's cgroup root (cgroupfs, relative to each hierarchy). */
  cgroupRoot: string;
  /** Kubeconfig with the node's identity. */
  kubeconfig: string;
}

/** Options for {@linkcode startKubelet}. */
export interface KubeletOptions {
  /** Node name. */
  nodeName: string;
  /** Control plane to register with. */
  kube: ControlPlaneInfo;
  /** CRI socket of the node's runtime. */
  runtimeSocket: string;
  /** Node IP (not loopback: the kubelet refuses 127.0.0.0/8). */
  nodeIp: string;
  /** cgroup root, e.g. "/lpm-1a2b3c-node-a". */
  cgroupRoot: string;
  /** Directory of logs. */
  logDir: string;
}

/** cgroup v1 hierarchies the kubelet and runc use on this machine. */
export const CGROUP_V1_CONTROLLERS = [
  "cpu",
  "cpuacct",
  "cpuset",
  "memory",
  "devices",
  "freezer",
  "blkio",
  "pids",
  "systemd",
] as const;

/**
 * Creates the cgroup root in every v1 hierarchy (the kubelet refuses a
 * cgroup root that does not exist). cpuset needs its cpus/mems filled in.
 */
export async function createCgroupRoot(root: string): Promise<void> {
  for (const c of CGROUP_V1_CONTROLLERS) {
    const base = `/sys/fs/cgroup/${c}`;
    try {
      await Deno.stat(base);
    } catch {
      continue;
    }
    await Deno.mkdir(`${base}${root}`, { recursive: true });
    if (c === "cpuset") {
      for (const f of ["cpuset.cpus", "cpuset.mems"]) {
        const v = await Deno.readTextFile(`${base}/${f}`);
        await Deno.writeTextFile(`${base}${root}/${f}`, v.trim());
      }
    }
  }
}

/**
 * Removes the cgroup root and everything below it in every hierarchy
 * (deepest first), killing any process still in it.
 */
export async function removeCgroupRoot(root: string): Promise<string[]> {
  const leftovers: string[] = [];
  for (const c of [...CGROUP_V1_CONTROLLERS, "unified"]) {
    const top = `/sys/fs/cgroup/${c}${root}`;
    const dirs: string[] = [];
    const walk = async (d: string) => {
      try {
        for await (const e of Deno.readDir(d)) if (e.isDirectory) await walk(`${d}/${e.name}`);
        dirs.push(d);
      } catch {
        // gone or not a dir
      }
    };
    await walk(top);
    for (const d of dirs) {
      for (let i = 0; i < 50; i++) {
        try {
          await Deno.remove(d);
          break;
        } catch (err) {
          if (err instanceof Deno.errors.NotFound) break;
          const procs = await Deno.readTextFile(`${d}/cgroup.procs`).catch(() => "");
          for (const pid of procs.split("\n").filter(Boolean)) {
            try {
              Deno.kill(Number(pid), "SIGKILL");
            } catch {
              // gone
            }
          }
          if (c === "freezer") {
            await Deno.writeTextFile(`${d}/freezer.state`, "THAWED").catch(() => {});
          }
          await new Promise((r) => setTimeout(r, 100));
          if (i === 49) leftovers.push(d);
        }
      }
    }
  }
  return leftovers;
}

/** KubeletConfiguration (v1beta1) for one node, as JSON (a YAML subset). */
export function kubeletConfig(
  dir: string,
  opts: KubeletOptions & {
    port: number;
    healthzPort: number;
    serving: { cert: string; key: string };
    podLogsDir: string;
  },
): Record<string, unknown> {
  return {
    kind: "KubeletConfiguration",
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    address: opts.nodeIp,
    port: opts.port,
    readOnlyPort: 0,
    healthzBindAddress: "127.0.0.1",
    healthzPort: opts.healthzPort,
    tlsCertFile: opts.serving.cert,
    tlsPrivateKeyFile: opts.serving.key,
    authentication: {
      anonymous: { enabled: false },
      // Bearer tokens (service accounts, such as the lpm agent's) are checked
      // with a TokenReview, as on kubeadm clusters.
      webhook: { enabled: true, cacheTTL: "10s" },
      x509: { clientCAFile: opts.kube.caCert },
    },
    authorization: { mode: "Webhook" },
    containerRuntimeEndpoint: `unix://${opts.runtimeSocket}`,
    cgroupDriver: "cgroupfs",
    cgroupRoot: opts.cgroupRoot,
    cgroupsPerQOS: true,
    // This VM runs cgroup v1; kubelet 1.34 still supports it when told not to fail.
    failCgroupV1: false,
    failSwapOn: false,
    // Shared machine: never evict the test pods because another engineer filled the disk.
    evictionHard: {
      "memory.available": "1Mi",
      "nodefs.available": "1%",
      "nodefs.inodesFree": "1%",
      "imagefs.available": "1%",
    },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    // Leave the host's iptables alone: two kubelets share one network namespace.
    makeIPTablesUtilChains: false,
    podLogsDir: opts.podLogsDir,
    resolvConf: "/etc/resolv.conf",
    registerNode: true,
    nodeStatusUpdateFrequency: "4s",
    nodeStatusReportFrequency: "10s",
    syncFrequency: "10s",
    fileCheckFrequency: "10s",
    serializeImagePulls: false,
    featureGates: { ContainerCheckpoint: true },
    staticPodPath: "",
    volumePluginDir: `${dir}/volume-plugins`,
  };
}

/**
 * Issues the node's certificates, writes its config and starts the kubelet
 * in `dir`; resolves when its healthz answers (not yet when the node is Ready).
 */
export async function startKubelet(
  dir: string,
  opts: KubeletOptions,
): Promise<{ info: KubeletInfo; process: ManagedProcess }> {
  const pkiDir = `${dir}/pki`;
  const rootDir = `${dir}/root`;
  const podLogsDir = `${dir}/pod-logs`;
  for (const d of [pkiDir, rootDir, podLogsDir, `${dir}/volume-plugins`]) {
    await Deno.mkdir(d, { recursive: true });
  }
  await Deno.copyFile(opts.kube.caCert, `${pkiDir}/ca.crt`);
  await Deno.copyFile(opts.kube.caKey, `${pkiDir}/ca.key`);
  await Deno.chmod(`${pkiDir}/ca.key`, 0o600);
  const pki = await Pki.open(pkiDir);
  const [client, serving] = await Promise.all([
    pki.issue("kubelet-client", {
      cn: `system:node:${opts.nodeName}`,
      orgs: ["system:nodes"],
    }),
    pki.issue("kubelet-serving", {
      cn: `system:node:${opts.nodeName}`,
      usage: ["server"],
      sans: [opts.nodeIp, "127.0.0.1", opts.nodeName],
    }),
  ]);
  // The node needs the CA certificate only; its key stays with the control plane.
  await Deno.remove(`${pkiDir}/ca.key`);
  const kubeconfig = `${dir}/kubelet.kubeconfig`;
  await writeKubeconfig(kubeconfig, {
    server: opts.kube.server,
    caFile: pki.ca.cert,
    user: client,
  });
  await createCgroupRoot(opts.cgroupRoot);
  const port = freePort();
  const healthzPort = freePort();
  const config = `${dir}/config.json`;
  await Deno.writeTextFile(
    config,
    JSON.stringify(
      kubeletConfig(dir, { ...opts, port, healthzPort, serving, podLogsDir }),
      null,
      2,
    ) + "\n",
  );
  const name = `${opts.nodeName}-kubelet`;
  const proc = startProcess(name, [
    tool("kubelet"),
    `--config=${config}`,
    `--kubeconfig=${kubeconfig}`,
    `--root-dir=${rootDir}`,
    `--hostname-override=${opts.nodeName}`,
    `--node-ip=${opts.nodeIp}`,
    `--node-labels=lpm.my.domain/local-node=${opts.nodeName}`,
    "--v=2",
  ], { logPath: `${opts.logDir}/${name}.log`, env: { PATH: toolPath() } });
  try {
    await waitFor(() => tcpOpen(healthzPort), {
      what: `${name} healthz on 127.0.0.1:${healthzPort}`,
      timeoutMs: 60_000,
      exited: proc.exited,
    });
  } catch (err) {
    const log = await tailLog(proc.logPath, 20);
    await proc.stop();
    throw new Error(`Cannot start ${name}: ${(err as Error).message}\n${log}`);
  }
  return {
    info: {
      ip: opts.nodeIp,
      port,
      healthzPort,
      rootDir,
      checkpointDir: `${rootDir}/checkpoints`,
      podLogsDir,
      cgroupRoot: opts.cgroupRoot,
      kubeconfig,
    },
    process: proc,
  };
}
