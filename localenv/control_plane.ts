/**
 * A real Kubernetes control plane on loopback: etcd, kube-apiserver (client
 * certificate authentication, RBAC), kube-controller-manager (garbage
 * collection, service-account tokens) and kube-scheduler.
 * @module
 */
import { type ManagedProcess, startProcess, tailLog } from "./_process.ts";
import { freePort, tcpOpen, waitFor } from "./_wait.ts";
import { Pki } from "./pki.ts";
import { writeKubeconfig } from "./kubeconfig.ts";
import { tool, toolPath } from "./tools.ts";

/** What a running control plane offers. */
export interface ControlPlaneInfo {
  /** https URL of kube-apiserver. */
  server: string;
  /** Admin kubeconfig (system:masters). */
  kubeconfig: string;
  /** CA that signed every certificate, also the client CA. */
  caCert: string;
  /** CA private key, to issue more client certificates (nodes, agents). */
  caKey: string;
  /** Client certificate the API server presents to kubelets. */
  kubeletClient: { cert: string; key: string };
  /** Directory with PKI and data. */
  dir: string;
}

/** A control plane started by {@linkcode startControlPlane}. */
export interface ControlPlane {
  /** Connection details. */
  info: ControlPlaneInfo;
  /** Processes, in start order. */
  processes: ManagedProcess[];
  /** Stops everything, last started first. */
  stop(): Promise<void>;
}

async function httpsOk(url: string, client: Deno.HttpClient): Promise<boolean> {
  try {
    const r = await fetch(url, { client });
    await r.body?.cancel();
    return r.ok;
  } catch {
    return false;
  }
}

/** Starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler in `dir`. */
export async function startControlPlane(
  dir: string,
  opts: { logDir: string; name?: string } = { logDir: dir },
): Promise<ControlPlane> {
  const processes: ManagedProcess[] = [];
  const stop = async () => {
    for (const p of [...processes].reverse()) await p.stop();
  };
  try {
    const pkiDir = `${dir}/pki`;
    const pki = await Pki.create(pkiDir, `${opts.name ?? "lpm"}-ca`);
    const apiPort = freePort();
    const server = `https://127.0.0.1:${apiPort}`;
    const [serving, admin, cm, sched, kubeletClient, sa] = await Promise.all([
      pki.issue("apiserver", {
        cn: "kube-apiserver",
        usage: ["server"],
        sans: [
          "127.0.0.1",
          "localhost",
          "kubernetes",
          "kubernetes.default",
          "kubernetes.default.svc",
          "10.96.0.1",
        ],
      }),
      pki.issue("admin", { cn: "lpm-admin", orgs: ["system:masters"] }),
      pki.issue("controller-manager", { cn: "system:kube-controller-manager" }),
      pki.issue("scheduler", { cn: "system:kube-scheduler" }),
      pki.issue("apiserver-kubelet-client", {
        cn: "kube-apiserver-kubelet-client",
        orgs: ["system:masters"],
      }),
      pki.signingKey("sa"),
    ]);
    const kubeconfig = `${dir}/admin.kubeconfig`;
    const cmKubeconfig = `${dir}/controller-manager.kubeconfig`;
    const schedKubeconfig = `${dir}/scheduler.kubeconfig`;
    await writeKubeconfig(kubeconfig, { server, caFile: pki.ca.cert, user: admin });
    await writeKubeconfig(cmKubeconfig, { server, caFile: pki.ca.cert, user: cm });
    await writeKubeconfig(schedKubeconfig, { server, caFile: pki.ca.cert, user: sched });

    // etcd
    const etcdPort = freePort();
    const etcdPeer = freePort();
    const etcd = startProcess("etcd", [
      tool("etcd"),
      "--name=lpm",
      `--data-dir=${dir}/etcd`,
      `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=lpm=http://127.0.0.1:${etcdPeer}`,
      "--unsafe-no-fsync", // test data, thrown away; fsync dominates start-up on this disk
      "--log-level=warn",
    ], { logPath: `${opts.logDir}/etcd.log` });
    processes.push(etcd);
    await waitFor(() => tcpOpen(etcdPort), {
      what: "etcd",
      timeoutMs: 30_000,
      exited: etcd.exited,
    });

    const apiserver = startProcess("kube-apiserver", [
      tool("kube-apiserver"),
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${apiPort}`,
      `--tls-cert-file=${serving.cert}`,
      `--tls-private-key-file=${serving.key}`,
      `--client-ca-file=${pki.ca.cert}`,
      `--kubelet-client-certificate=${kubeletClient.cert}`,
      `--kubelet-client-key=${kubeletClient.key}`,
      `--kubelet-certificate-authority=${pki.ca.cert}`,
      "--kubelet-preferred-address-types=InternalIP,Hostname",
      "--authorization-mode=Node,RBAC",
      "--anonymous-auth=false",
      "--service-cluster-ip-range=10.96.0.0/16",
      "--service-account-issuer=https://kubernetes.default.svc",
      `--service-account-key-file=${sa.pub}`,
      `--service-account-signing-key-file=${sa.key}`,
      "--allow-privileged=true",
      "--endpoint-reconciler-type=none",
      "--profiling=false",
      "--v=1",
    ], { logPath: `${opts.logDir}/kube-apiserver.log` });
    processes.push(apiserver);
    const client = Deno.createHttpClient({
      caCerts: [await Deno.readTextFile(pki.ca.cert)],
      cert: await Deno.readTextFile(admin.cert),
      key: await Deno.readTextFile(admin.key),
    });
    try {
      await waitFor(() => httpsOk(`${server}/readyz`, client), {
        what: "kube-apiserver /readyz",
        timeoutMs: 90_000,
        exited: apiserver.exited,
      });
    } finally {
      client.close();
    }

    const cmPort = freePort();
    const controllerManager = startProcess("kube-controller-manager", [
      tool("kube-controller-manager"),
      `--kubeconfig=${cmKubeconfig}`,
      `--authentication-kubeconfig=${cmKubeconfig}`,
      `--authorization-kubeconfig=${cmKubeconfig}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${cmPort}`,
      "--leader-elect=false",
      "--use-service-account-credentials=true",
      `--service-account-private-key-file=${sa.key}`,
      `--root-ca-file=${pki.ca.cert}`,
      `--cluster-signing-cert-file=${pki.ca.cert}`,
      `--cluster-signing-key-file=${pki.ca.key}`,
      "--controllers=*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle,-route",
      "--concurrent-gc-syncs=5",
      "--v=1",
    ], { logPath: `${opts.logDir}/kube-controller-manager.log`, env: { PATH: toolPath() } });
    processes.push(controllerManager);
    const schedPort = freePort();
    const scheduler = startProcess("kube-scheduler", [
      tool("kube-scheduler"),
      `--kubeconfig=${schedKubeconfig}`,
      `--authentication-kubeconfig=${schedKubeconfig}`,
      `--authorization-kubeconfig=${schedKubeconfig}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${schedPort}`,
      "--leader-elect=false",
      "--v=1",
    ], { logPath: `${opts.logDir}/kube-scheduler.log` });
    processes.push(scheduler);
    await waitFor(() => tcpOpen(cmPort), {
      what: "kube-controller-manager",
      timeoutMs: 60_000,
      exited: controllerManager.exited,
    });
    await waitFor(() => tcpOpen(schedPort), {
      what: "kube-scheduler",
      timeoutMs: 60_000,
      exited: scheduler.exited,
    });
    // A fresh cluster refuses pods until the ServiceAccount controller has
    // made "default/default": the control plane is ready only then.
    await waitFor(
      () =>
        kubectl(kubeconfig, ["-n", "default", "get", "serviceaccount", "default"]).then(
          () => true,
          () => false,
        ),
      {
        what: 'ServiceAccount "default/default"',
        timeoutMs: 60_000,
        exited: controllerManager.exited,
      },
    );
    return {
      info: {
        server,
        kubeconfig,
        caCert: pki.ca.cert,
        caKey: pki.ca.key,
        kubeletClient,
        dir,
      },
      processes,
      stop,
    };
  } catch (err) {
    const logs = await Promise.all(
      processes.map(async (p) => `--- ${p.name} (${p.logPath}):\n${await tailLog(p.logPath, 15)}`),
    );
    await stop();
    throw new Error(
      `Cannot start the control plane: ${(err as Error).message}\n${logs.join("\n")}`,
    );
  }
}

/** Runs kubectl against `kubeconfig`; throws with its stderr on failure. */
export async function kubectl(kubeconfig: string, args: string[], stdin?: string): Promise<string> {
  const cmd = new Deno.Command(tool("kubectl"), {
    args: [`--kubeconfig=${kubeconfig}`, ...args],
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = cmd.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await cmd.output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `kubectl ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
  return text;
}

/** Applies every CRD under `crdDir` and waits until each is Established. */
export async function installCrds(kubeconfig: string, crdDir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const e of Deno.readDir(crdDir)) {
    if (e.isFile && /\.ya?ml$/.test(e.name) && e.name !== "kustomization.yaml") {
      files.push(`${crdDir}/${e.name}`);
    }
  }
  if (files.length === 0) return [];
  await kubectl(kubeconfig, [
    "apply",
    "--server-side",
    "--force-conflicts",
    ...files.flatMap((f) => ["-f", f]),
  ]);
  const names = (await kubectl(kubeconfig, ["get", "crd", "-o", "name"])).trim().split("\n").filter(
    Boolean,
  );
  const ours = names.filter((n) => n.endsWith(".lpm.my.domain"));
  if (ours.length) {
    await kubectl(kubeconfig, ["wait", "--for=condition=Established", "--timeout=60s", ...ours]);
  }
  return ours;
}
