/**
 * A real Kubernetes control plane on loopback: etcd, kube-apiserver (client
 * certificate authentication, RBAC), kube-controller-manager (garbage
 * collection, service-account tokens) and kube-scheduler.
 * @module
 */
import { type ManagedProcess, startGroup, startProcess } from "./_process.ts";
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

/** The certificates and kubeconfigs of one control plane. */
interface ControlPlaneCerts {
  pki: Pki;
  serving: { cert: string; key: string };
  admin: { cert: string; key: string };
  kubeletClient: { cert: string; key: string };
  sa: { key: string; pub: string };
  kubeconfig: string;
  cmKubeconfig: string;
  schedKubeconfig: string;
}

async function issueCertificates(
  dir: string,
  name: string,
  server: string,
): Promise<ControlPlaneCerts> {
  const pki = await Pki.create(`${dir}/pki`, `${name}-ca`);
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
  return { pki, serving, admin, kubeletClient, sa, kubeconfig, cmKubeconfig, schedKubeconfig };
}

function startEtcd(
  dir: string,
  logDir: string,
): { process: ManagedProcess; port: number } {
  const port = freePort();
  const peer = freePort();
  const etcd = startProcess("etcd", [
    tool("etcd"),
    "--name=lpm",
    `--data-dir=${dir}/etcd`,
    `--listen-client-urls=http://127.0.0.1:${port}`,
    `--advertise-client-urls=http://127.0.0.1:${port}`,
    `--listen-peer-urls=http://127.0.0.1:${peer}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
    `--initial-cluster=lpm=http://127.0.0.1:${peer}`,
    "--unsafe-no-fsync", // test data, thrown away; fsync dominates start-up on this disk
    "--log-level=warn",
  ], { logPath: `${logDir}/etcd.log` });
  return { process: etcd, port };
}

async function startApiserver(
  c: ControlPlaneCerts,
  ports: { api: number; etcd: number },
  logDir: string,
): Promise<ManagedProcess> {
  const apiserver = startProcess("kube-apiserver", [
    tool("kube-apiserver"),
    `--etcd-servers=http://127.0.0.1:${ports.etcd}`,
    "--bind-address=127.0.0.1",
    "--advertise-address=127.0.0.1",
    `--secure-port=${ports.api}`,
    `--tls-cert-file=${c.serving.cert}`,
    `--tls-private-key-file=${c.serving.key}`,
    `--client-ca-file=${c.pki.ca.cert}`,
    `--kubelet-client-certificate=${c.kubeletClient.cert}`,
    `--kubelet-client-key=${c.kubeletClient.key}`,
    `--kubelet-certificate-authority=${c.pki.ca.cert}`,
    "--kubelet-preferred-address-types=InternalIP,Hostname",
    "--authorization-mode=Node,RBAC",
    "--anonymous-auth=false",
    "--service-cluster-ip-range=10.96.0.0/16",
    "--service-account-issuer=https://kubernetes.default.svc",
    `--service-account-key-file=${c.sa.pub}`,
    `--service-account-signing-key-file=${c.sa.key}`,
    "--allow-privileged=true",
    "--endpoint-reconciler-type=none",
    "--profiling=false",
    "--v=1",
  ], { logPath: `${logDir}/kube-apiserver.log` });
  const client = Deno.createHttpClient({
    caCerts: [await Deno.readTextFile(c.pki.ca.cert)],
    cert: await Deno.readTextFile(c.admin.cert),
    key: await Deno.readTextFile(c.admin.key),
  });
  try {
    await waitFor(() => httpsOk(`https://127.0.0.1:${ports.api}/readyz`, client), {
      what: "kube-apiserver /readyz",
      timeoutMs: 90_000,
      exited: apiserver.exited,
    });
  } finally {
    client.close();
  }
  return apiserver;
}

function startControllerManager(
  c: ControlPlaneCerts,
  logDir: string,
): { process: ManagedProcess; port: number } {
  const port = freePort();
  const process = startProcess("kube-controller-manager", [
    tool("kube-controller-manager"),
    `--kubeconfig=${c.cmKubeconfig}`,
    `--authentication-kubeconfig=${c.cmKubeconfig}`,
    `--authorization-kubeconfig=${c.cmKubeconfig}`,
    "--bind-address=127.0.0.1",
    `--secure-port=${port}`,
    "--leader-elect=false",
    "--use-service-account-credentials=true",
    `--service-account-private-key-file=${c.sa.key}`,
    `--root-ca-file=${c.pki.ca.cert}`,
    `--cluster-signing-cert-file=${c.pki.ca.cert}`,
    `--cluster-signing-key-file=${c.pki.ca.key}`,
    "--controllers=*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle,-route",
    "--concurrent-gc-syncs=5",
    "--v=1",
  ], { logPath: `${logDir}/kube-controller-manager.log`, env: { PATH: toolPath() } });
  return { process, port };
}

function startScheduler(
  c: ControlPlaneCerts,
  logDir: string,
): { process: ManagedProcess; port: number } {
  const port = freePort();
  const process = startProcess("kube-scheduler", [
    tool("kube-scheduler"),
    `--kubeconfig=${c.schedKubeconfig}`,
    `--authentication-kubeconfig=${c.schedKubeconfig}`,
    `--authorization-kubeconfig=${c.schedKubeconfig}`,
    "--bind-address=127.0.0.1",
    `--secure-port=${port}`,
    "--leader-elect=false",
    "--v=1",
  ], { logPath: `${logDir}/kube-scheduler.log` });
  return { process, port };
}

/** Starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler in `dir`. */
export async function startControlPlane(
  dir: string,
  opts: { logDir: string; name?: string } = { logDir: dir },
): Promise<ControlPlane> {
  return await startGroup("Cannot start the control plane", async ({ processes }) => {
    const apiPort = freePort();
    const server = `https://127.0.0.1:${apiPort}`;
    const certs = await issueCertificates(dir, opts.name ?? "lpm", server);
    const etcd = startEtcd(dir, opts.logDir);
    processes.push(etcd.process);
    await waitFor(() => tcpOpen(etcd.port), {
      what: "etcd",
      timeoutMs: 30_000,
      exited: etcd.process.exited,
    });
    processes.push(await startApiserver(certs, { api: apiPort, etcd: etcd.port }, opts.logDir));
    const cm = startControllerManager(certs, opts.logDir);
    processes.push(cm.process);
    const sched = startScheduler(certs, opts.logDir);
    processes.push(sched.process);
    for (
      const [part, what] of [[cm, "kube-controller-manager"], [sched, "kube-scheduler"]] as const
    ) {
      await waitFor(() => tcpOpen(part.port), {
        what,
        timeoutMs: 60_000,
        exited: part.process.exited,
      });
    }
    // A fresh cluster refuses pods until the ServiceAccount controller has
    // made "default/default": the control plane is ready only then.
    await waitFor(
      () =>
        kubectl(certs.kubeconfig, ["-n", "default", "get", "serviceaccount", "default"]).then(
          () => true,
          () => false,
        ),
      {
        what: 'ServiceAccount "default/default"',
        timeoutMs: 60_000,
        exited: cm.process.exited,
      },
    );
    const { kubeconfig, pki, kubeletClient } = certs;
    return {
      info: { server, kubeconfig, caCert: pki.ca.cert, caKey: pki.ca.key, kubeletClient, dir },
    };
  });
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
