/**
 * lpm itself in the local environment: one node agent per harness node (a
 * host process, found by the controller through `--agent node=host:port`)
 * and the controller manager, all with mutual TLS from the cluster's CA.
 * Agents talk to the API server as the `lpm-agent` ServiceAccount's user
 * name, so the RBAC in `config/agent/` is what they really get.
 * @module
 */
import { type ManagedProcess, type ProcessGroup, startGroup, startProcess } from "./_process.ts";
import { CONTROLLER_V8_FLAGS } from "../controllers/v8_flags.ts";
import { ALLOCATOR_ENV } from "../base/allocator_env.ts";
import { freePort, tcpOpen, waitFor } from "./_wait.ts";
import { Pki } from "./pki.ts";
import { writeKubeconfig } from "./kubeconfig.ts";
import { kubectl } from "./control_plane.ts";
import { tool, toolPath } from "./tools.ts";
import type { EnvironmentInfo, LpmInfo } from "./info.ts";

const REPO_ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** The credentials lpm's processes run with in the local environment. */
interface LpmCredentials {
  /** lpm's own CA for the agent <-> controller mTLS. */
  lpmPki: Pki;
  /** Each node's agent serving pair. */
  agentTlsOf: Map<string, { cert: string; key: string }>;
  /** The controller's client pair. */
  controllerTls: { cert: string; key: string };
  /** Kubeconfig of the lpm-agent ServiceAccount's user. */
  agentKubeconfig: string;
  /** A token of the lpm-agent ServiceAccount, for the kubelet. */
  tokenFile: string;
}

type Kube = NonNullable<EnvironmentInfo["kube"]>;
type Node = NonNullable<EnvironmentInfo["nodes"]>[number];

async function issueCredentials(kube: Kube, nodes: Node[], dir: string): Promise<LpmCredentials> {
  const pki = await Pki.open(kube.caCert.replace(/\/[^/]+$/, ""));
  // The agent <-> controller mTLS has a CA of its own (not the cluster's, from
  // which a CSR could mint "lpm-controller"), each agent's certificate names
  // its node, the controller checks that name, and the agents pin the
  // controller's certificate by fingerprint (docs/security.md).
  const lpmPki = await Pki.open(`${dir}/pki`).catch(() => Pki.create(`${dir}/pki`, "lpm-ca"));
  const agentTlsOf = new Map<string, { cert: string; key: string }>();
  for (const node of nodes) {
    agentTlsOf.set(
      node.name,
      await lpmPki.issue(`lpm-agent-${node.name}`, {
        cn: "lpm-agent",
        // "lpm-agent" too, for clients that reach an agent by address (CLIs, tests).
        sans: [`lpm-agent.${node.name}`, "lpm-agent", "127.0.0.1"],
        usage: ["server"],
      }),
    );
  }
  const [controllerTls, agentUser] = await Promise.all([
    lpmPki.issue("lpm-controller", { cn: "lpm-controller", usage: ["client"] }),
    pki.issue("lpm-agent-user", {
      cn: "system:serviceaccount:lpm-system:lpm-agent",
      orgs: ["system:serviceaccounts", "system:serviceaccounts:lpm-system"],
    }),
  ]);
  const agentKubeconfig = `${dir}/agent.kubeconfig`;
  await writeKubeconfig(agentKubeconfig, {
    server: kube.server,
    caFile: kube.caCert,
    user: agentUser,
  });
  await kubectl(kube.kubeconfig, [
    "apply",
    "-f",
    `${REPO_ROOT}/config/agent/namespace.yaml`,
    "-f",
    `${REPO_ROOT}/config/agent/rbac.yaml`,
  ]);
  // The agent calls its own kubelet with the lpm-agent service account's
  // token (what a DaemonSet pod has): the RBAC in config/agent/ grants only
  // nodes/checkpoint for that, no nodes/proxy.
  const tokenFile = `${dir}/agent.token`;
  const token = await kubectl(kube.kubeconfig, [
    "-n",
    "lpm-system",
    "create",
    "token",
    "lpm-agent",
    "--duration=48h",
  ]);
  await Deno.writeTextFile(tokenFile, token.trim());
  return { lpmPki, agentTlsOf, controllerTls, agentKubeconfig, tokenFile };
}

async function startAgent(
  node: Node,
  kube: Kube,
  creds: LpmCredentials,
  opts: { dir: string; logDir: string },
): Promise<{ process: ManagedProcess; agent: LpmInfo["agents"][number] }> {
  const port = freePort();
  const stateDir = `${opts.dir}/agent-${node.name}`;
  await Deno.mkdir(stateDir, { recursive: true });
  const tls = creds.agentTlsOf.get(node.name)!;
  const process = startProcess(`agent-${node.name}`, [
    Deno.execPath(),
    "run",
    "-A",
    `${REPO_ROOT}/agent/main.ts`,
    `--node-name=${node.name}`,
    `--listen=127.0.0.1:${port}`,
    `--tls-cert=${tls.cert}`,
    `--tls-key=${tls.key}`,
    `--client-ca=${creds.lpmPki.ca.cert}`,
    `--allowed-client=sha256:${await Pki.fingerprint(creds.controllerTls.cert)}`,
    `--state-dir=${stateDir}`,
    `--kubeconfig=${creds.agentKubeconfig}`,
    `--kubelet-root-dir=${node.rootDir}`,
    `--kubelet-url=https://${node.ip}:${node.kubeletPort}`,
    `--kubelet-ca=${kube.caCert}`,
    `--kubelet-token-file=${creds.tokenFile}`,
    `--runtime-endpoint=unix://${node.containerdSocket}`,
    `--criu-log-dir=${node.containerdState}`,
    `--runc=${tool("runc")}`,
    `--runc-root=${node.containerdState}/runc/k8s.io`,
  ], {
    logPath: `${opts.logDir}/agent-${node.name}.log`,
    cwd: REPO_ROOT,
    env: { PATH: toolPath(), ...ALLOCATOR_ENV },
  });
  return {
    process,
    agent: { node: node.name, address: `127.0.0.1:${port}`, pid: process.pid, stateDir },
  };
}

function startController(
  kube: Kube,
  agents: LpmInfo["agents"],
  creds: LpmCredentials,
  opts: { dir: string; logDir: string; pollMs?: number },
): { process: ManagedProcess; healthPort: number } {
  const healthPort = freePort();
  // The pods/eviction webhook (controllers/eviction_webhook.ts): a host
  // process, so the API server calls it by URL on loopback.
  const webhookPort = freePort();
  const process = startProcess("controller", [
    Deno.execPath(),
    "run",
    "-A",
    `--v8-flags=${CONTROLLER_V8_FLAGS}`,
    `${REPO_ROOT}/controllers/main.ts`,
    `--kubeconfig=${kube.kubeconfig}`,
    ...agents.map((a) => `--agent=${a.node}=${a.address}`),
    `--tls-cert=${creds.controllerTls.cert}`,
    `--tls-key=${creds.controllerTls.key}`,
    `--tls-ca=${creds.lpmPki.ca.cert}`,
    "--tls-server-name=lpm-agent.{node}",
    `--health-addr=127.0.0.1:${healthPort}`,
    `--poll-ms=${opts.pollMs ?? 500}`,
    `--webhook-addr=127.0.0.1:${webhookPort}`,
    `--webhook-url=https://127.0.0.1:${webhookPort}`,
    "--webhook-secrets=lpm-system",
    `--tls-dir=${opts.dir}/controller-tls`,
    // More controller flags for this environment, e.g. "--max-outbound-per-node=1".
    ...(Deno.env.get("LPM_CONTROLLER_ARGS") ?? "").split(/\s+/).filter(Boolean),
  ], {
    logPath: `${opts.logDir}/controller.log`,
    cwd: REPO_ROOT,
    env: { PATH: toolPath(), ...ALLOCATOR_ENV },
  });
  return { process, healthPort };
}

/** Starts agents for every node of `env` and the controller. */
export async function startLpm(
  env: EnvironmentInfo,
  dir: string,
  opts: { logDir: string; pollMs?: number },
): Promise<{ info: LpmInfo } & ProcessGroup> {
  const { kube, nodes } = env;
  if (!kube || !nodes?.length) {
    throw new Error("lpm needs the control plane and at least one node");
  }
  return await startGroup("Cannot start lpm", async ({ processes }) => {
    await Deno.mkdir(dir, { recursive: true });
    const creds = await issueCredentials(kube, nodes, dir);
    const agents: LpmInfo["agents"] = [];
    for (const node of nodes) {
      const started = await startAgent(node, kube, creds, { dir, logDir: opts.logDir });
      processes.push(started.process);
      agents.push(started.agent);
    }
    for (const [i, a] of agents.entries()) {
      await waitFor(() => tcpOpen(Number(a.address.split(":")[1])), {
        what: `the agent of ${a.node}`,
        timeoutMs: 60_000,
        exited: processes[i].exited,
      });
    }
    const controller = startController(kube, agents, creds, { ...opts, dir });
    processes.push(controller.process);
    await waitFor(async () => {
      const r = await fetch(`http://127.0.0.1:${controller.healthPort}/readyz`).catch(() =>
        undefined
      );
      await r?.body?.cancel();
      return r?.ok;
    }, { what: "the controller's /readyz", timeoutMs: 60_000, exited: controller.process.exited });
    const tls = {
      ca: creds.lpmPki.ca.cert,
      controllerCert: creds.controllerTls.cert,
      controllerKey: creds.controllerTls.key,
    };
    return {
      info: {
        agents,
        controller: { pid: controller.process.pid, healthPort: controller.healthPort },
        tls,
      },
    };
  });
}
