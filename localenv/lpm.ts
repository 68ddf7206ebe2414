/**
 * lpm itself in the local environment: one node agent per harness node (a
 * host process, found by the controller through `--agent node=host:port`)
 * and the controller manager, all with mutual TLS from the cluster's CA.
 * Agents talk to the API server as the `lpm-agent` ServiceAccount's user
 * name, so the RBAC in `config/agent/` is what they really get.
 * @module
 */
import { type ManagedProcess, startProcess, tailLog } from "./_process.ts";
import { freePort, tcpOpen, waitFor } from "./_wait.ts";
import { Pki } from "./pki.ts";
import { writeKubeconfig } from "./kubeconfig.ts";
import { kubectl } from "./control_plane.ts";
import { toolPath } from "./tools.ts";
import type { EnvironmentInfo, LpmInfo } from "./info.ts";

const REPO_ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** Starts agents for every node of `env` and the controller. */
export async function startLpm(
  env: EnvironmentInfo,
  dir: string,
  opts: { logDir: string; pollMs?: number },
): Promise<{ info: LpmInfo; processes: ManagedProcess[]; stop(): Promise<void> }> {
  if (!env.kube || !env.nodes?.length) {
    throw new Error("lpm needs the control plane and at least one node");
  }
  const processes: ManagedProcess[] = [];
  const stop = async () => {
    for (const p of [...processes].reverse()) await p.stop();
  };
  try {
    await Deno.mkdir(dir, { recursive: true });
    const pki = await Pki.open(env.kube.caCert.replace(/\/[^/]+$/, ""));
    // The agent <-> controller mTLS has a CA of its own (not the cluster's, from
    // which a CSR could mint "lpm-controller"), each agent's certificate names
    // its node, the controller checks that name, and the agents pin the
    // controller's certificate by fingerprint (docs/security.md).
    const lpmPki = await Pki.open(`${dir}/pki`).catch(() => Pki.create(`${dir}/pki`, "lpm-ca"));
    const agentTlsOf = new Map<string, { cert: string; key: string }>();
    for (const node of env.nodes) {
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
      server: env.kube.server,
      caFile: env.kube.caCert,
      user: agentUser,
    });
    await kubectl(env.kube.kubeconfig, [
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
    await Deno.writeTextFile(
      tokenFile,
      (await kubectl(env.kube.kubeconfig, [
        "-n",
        "lpm-system",
        "create",
        "token",
        "lpm-agent",
        "--duration=48h",
      ])).trim(),
    );
    const deno = Deno.execPath();
    const agents: LpmInfo["agents"] = [];
    for (const node of env.nodes) {
      const port = freePort();
      const stateDir = `${dir}/agent-${node.name}`;
      await Deno.mkdir(stateDir, { recursive: true });
      const p = startProcess(`agent-${node.name}`, [
        deno,
        "run",
        "-A",
        `${REPO_ROOT}/agent/main.ts`,
        `--node-name=${node.name}`,
        `--listen=127.0.0.1:${port}`,
        `--tls-cert=${agentTlsOf.get(node.name)!.cert}`,
        `--tls-key=${agentTlsOf.get(node.name)!.key}`,
        `--client-ca=${lpmPki.ca.cert}`,
        `--allowed-client=sha256:${await Pki.fingerprint(controllerTls.cert)}`,
        `--state-dir=${stateDir}`,
        `--kubeconfig=${agentKubeconfig}`,
        `--kubelet-root-dir=${node.rootDir}`,
        `--kubelet-url=https://${node.ip}:${node.kubeletPort}`,
        `--kubelet-ca=${env.kube.caCert}`,
        `--kubelet-token-file=${tokenFile}`,
        `--runtime-endpoint=unix://${node.containerdSocket}`,
        `--criu-log-dir=${node.containerdState}`,
      ], {
        logPath: `${opts.logDir}/agent-${node.name}.log`,
        cwd: REPO_ROOT,
        env: { PATH: toolPath() },
      });
      processes.push(p);
      agents.push({ node: node.name, address: `127.0.0.1:${port}`, pid: p.pid, stateDir });
    }
    for (const [i, a] of agents.entries()) {
      await waitFor(() => tcpOpen(Number(a.address.split(":")[1])), {
        what: `the agent of ${a.node}`,
        timeoutMs: 60_000,
        exited: processes[i].exited,
      });
    }
    const healthPort = freePort();
    const controller = startProcess("controller", [
      deno,
      "run",
      "-A",
      `${REPO_ROOT}/controllers/main.ts`,
      `--kubeconfig=${env.kube.kubeconfig}`,
      ...agents.map((a) => `--agent=${a.node}=${a.address}`),
      `--tls-cert=${controllerTls.cert}`,
      `--tls-key=${controllerTls.key}`,
      `--tls-ca=${lpmPki.ca.cert}`,
      "--tls-server-name=lpm-agent.{node}",
      `--health-addr=127.0.0.1:${healthPort}`,
      `--poll-ms=${opts.pollMs ?? 500}`,
    ], { logPath: `${opts.logDir}/controller.log`, cwd: REPO_ROOT, env: { PATH: toolPath() } });
    processes.push(controller);
    await waitFor(async () => {
      const r = await fetch(`http://127.0.0.1:${healthPort}/readyz`).catch(() => undefined);
      await r?.body?.cancel();
      return r?.ok;
    }, { what: "the controller's /readyz", timeoutMs: 60_000, exited: controller.exited });
    return {
      info: {
        agents,
        controller: { pid: controller.pid, healthPort },
        tls: {
          ca: lpmPki.ca.cert,
          controllerCert: controllerTls.cert,
          controllerKey: controllerTls.key,
        },
      },
      processes,
      stop,
    };
  } catch (err) {
    const logs = await Promise.all(
      processes.map(async (p) => `--- ${p.name}:\n${await tailLog(p.logPath, 15)}`),
    );
    await stop();
    throw new Error(`Cannot start lpm: ${(err as Error).message}\n${logs.join("\n")}`);
  }
}
