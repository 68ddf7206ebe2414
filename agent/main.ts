/**
 * The node agent process:
 *
 *   deno task agent --node-name node-a --listen 127.0.0.1:7443 \
 *     --tls-cert agent.crt --tls-key agent.key --client-ca ca.crt \
 *     --allowed-client lpm-controller --state-dir /var/lib/lpm-agent \
 *     [--kubeconfig kc] [--kubelet-url https://10.0.0.5:10250 --kubelet-ca ca.crt \
 *      --kubelet-client-cert c.crt --kubelet-client-key c.key] [--docker-socket /run/docker.sock] \
 *     [--runtime kubelet|docker] [--health-listen 127.0.0.1:7444] [--insecure-dev]
 *
 * Logs JSON lines on stderr; SIGHUP re-reads the TLS files (they are also
 * watched); SIGTERM/SIGINT stop gracefully.
 * @module
 */
import { type Args, parseArgs } from "../base/args.ts";
import { type KubeHttp, kubeHttp, loadKubeConfig } from "../kube/config.ts";
import { Logger } from "../base/log.ts";
import { type AgentSecurity, type AgentServerOptions, startAgentServer } from "./server.ts";
import type { ImagePublisher, VolumeCarrier } from "./pipeline.ts";
import { createKubeletDriver, type KubeletDriver } from "./runtime/kubelet.ts";
import { type DriverName, selectDriver } from "./runtime/select.ts";
import type { RuntimeDriver } from "./runtime/driver.ts";
import { resolveStorageClass } from "./storage_class.ts";
import { prepareImage } from "./prepare.ts";
import { createDockerDriver } from "./runtime/docker.ts";
import { readArchiveStats } from "../archive/mod.ts";
import { createImagePublisher, pushParentImage } from "./image_push.ts";
import { createOciImagePublisher } from "./image_oci.ts";
import { createVolumeCarrier } from "./volumes.ts";
import { criContainerStarts } from "./cri_runtime.ts";
import { type Freezes, openFreezes } from "./freezes.ts";
import { createPodFreezer } from "./runtime/freeze.ts";
import { connectContainerd, type ContainerdTasks } from "./runtime/containerd_tasks.ts";
import { applyNodeFlags, resolveKubeletUrl } from "./node_settings.ts";
import { fetchTlsSecret } from "../contract/cert_secrets.ts";
import { defaultAesGcmEngine, libcrypto } from "../storage/mod.ts";
import type { PrepareRestoreRequestMsg } from "../contract/proto.ts";

const USAGE = `Usage: deno task agent --node-name <node> [--listen <host:port>]
  (--tls-cert <file> --tls-key <file> --client-ca <file> --allowed-client <id>... | --insecure-dev)
  --state-dir <dir> [--kubeconfig <file>] [--runtime kubelet|docker] [--docker-socket <path>]
  [--kubelet-url <https://ip:port> --kubelet-ca <file>
   (--kubelet-token-file <file> | --kubelet-client-cert <file> --kubelet-client-key <file>)] [--kubelet-root-dir <dir>] [--kubelet-root-mount <dir>]
  [--health-listen <host:port>] [--image-compression none|gzip|zstd]
  [--allow-inline-storage]  (accept storage specs and credentials in requests: Docker hosts without a cluster)
  [--busybox /bin/busybox]  (static busybox copied into the images that carry emptyDir volumes)
  [--runtime-endpoint unix:///run/containerd/containerd.sock]  (PrepareRestore pulls through the CRI)
  [--runc <path>] [--runc-root <dir>]  (pre-copy rounds: the runc containerd runs and its state
   root for the CRI namespace; default "runc" from PATH and /run/containerd/runc/k8s.io)
  [--criu-log-dir <dir>]...  (where the runtime keeps CRIU logs; default /run/containerd and
   CRI-O's storage dirs: a failed dump's log is read only inside them)
  [--tls-secret <namespace>/<name>]  (the serving pair and CA from a Secret the controller
   creates, "{node}" = this node; re-read every minute for renewals; replaces --tls-*)
  [--tls-secret-dir <dir>]  (where that pair is written; default /tmp/lpm-agent-tls)
  [--node-flags-dir <dir>]  (file <dir>/<node>: flags, one a line, replacing the same flags)
  --kubelet-url may hold "{port}": the node's kubelet port from its Node object`;

/** Parsed command line. */
export interface AgentArgs {
  nodeName: string;
  listen: string;
  tlsCert?: string;
  tlsKey?: string;
  clientCa?: string;
  allowedClients: string[];
  stateDir: string;
  dockerSocket?: string;
  /** CRI endpoint of the node's runtime: PrepareRestore pulls the image there. */
  runtimeEndpoint?: string;
  kubeletUrl?: string;
  kubeletCa?: string;
  kubeletClientCert?: string;
  /** Bearer token file for the kubelet (the pod's service account token). */
  kubeletTokenFile?: string;
  kubeletClientKey?: string;
  kubeletRootDir?: string;
  kubeletRootMount?: string;
  /** Directories the runtime keeps CRIU logs in (a failed dump's log is read only there). */
  criuLogDirs?: string[];
  /** The runc binary containerd runs (pre-copy rounds). */
  runc: string;
  /** runc's state root of containerd's CRI namespace (pre-copy rounds). */
  runcRoot: string;
  /** Static busybox for volume images (emptyDir contents carried with checkpoints). */
  busybox?: string;
  kubeconfig?: string;
  runtime?: DriverName;
  healthListen?: string;
  /** Checkpoint image layer compression ("none": streamed while storing). */
  imageCompression: "none" | "gzip" | "zstd";
  insecureDev: boolean;
  /** Accept storage specs and credentials inline in requests (Docker hosts without a cluster). */
  allowInlineStorage: boolean;
  /** `namespace/name` of the TLS Secret to serve with (`{node}` replaced). */
  tlsSecret?: string;
  /** Where the Secret's files are written. */
  tlsSecretDir: string;
}

/** Parses and validates the command line; throws with the usage on error. */
export function parseAgentArgs(args: string[]): AgentArgs {
  const fail = (m: string): never => {
    throw new Error(`${m}\n${USAGE}`);
  };
  let parsed: Args;
  try {
    parsed = parseArgs(args, {
      known: [
        "node-name",
        "listen",
        "tls-cert",
        "tls-key",
        "client-ca",
        "allowed-client",
        "state-dir",
        "docker-socket",
        "runtime-endpoint",
        "kubelet-url",
        "kubelet-ca",
        "kubelet-client-cert",
        "kubelet-client-key",
        "kubelet-token-file",
        "kubelet-root-dir",
        "kubelet-root-mount",
        "criu-log-dir",
        "runc",
        "runc-root",
        "busybox",
        "kubeconfig",
        "runtime",
        "health-listen",
        "image-compression",
        "insecure-dev",
        "allow-inline-storage",
        "tls-secret",
        "tls-secret-dir",
      ],
      booleans: ["insecure-dev", "allow-inline-storage"],
      multiple: ["allowed-client", "criu-log-dir"],
    });
  } catch (err) {
    return fail((err as Error).message);
  }
  const { flags: v, lists } = parsed;
  const a: AgentArgs = {
    nodeName: v["node-name"] ?? Deno.env.get("NODE_NAME") ?? fail("--node-name is required"),
    listen: v.listen ?? "127.0.0.1:7443",
    tlsCert: v["tls-cert"],
    tlsKey: v["tls-key"],
    clientCa: v["client-ca"],
    allowedClients: (lists["allowed-client"] ?? []).flatMap((s) => s.split(",")).filter(Boolean),
    stateDir: v["state-dir"] ?? "/var/lib/lpm-agent",
    dockerSocket: v["docker-socket"],
    runtimeEndpoint: v["runtime-endpoint"],
    kubeletUrl: v["kubelet-url"],
    kubeletCa: v["kubelet-ca"],
    kubeletClientCert: v["kubelet-client-cert"],
    kubeletClientKey: v["kubelet-client-key"],
    kubeletTokenFile: v["kubelet-token-file"],
    kubeletRootDir: v["kubelet-root-dir"],
    kubeletRootMount: v["kubelet-root-mount"],
    criuLogDirs: lists["criu-log-dir"],
    runc: v.runc ?? "runc",
    runcRoot: v["runc-root"] ?? "/run/containerd/runc/k8s.io",
    busybox: v.busybox,
    kubeconfig: v.kubeconfig,
    runtime: v.runtime as DriverName | undefined,
    healthListen: v["health-listen"],
    imageCompression: (v["image-compression"] ?? "none") as AgentArgs["imageCompression"],
    insecureDev: v["insecure-dev"] === "true",
    allowInlineStorage: v["allow-inline-storage"] === "true",
    tlsSecret: v["tls-secret"],
    tlsSecretDir: v["tls-secret-dir"] ?? "/tmp/lpm-agent-tls",
  };
  if (a.tlsSecret) {
    a.tlsSecret = a.tlsSecret.replaceAll("{node}", a.nodeName);
    if (!/^[a-z0-9-]+\/[a-z0-9.-]+$/.test(a.tlsSecret)) {
      fail(`--tls-secret "${a.tlsSecret}" is invalid: expected "<namespace>/<name>"`);
    }
    a.tlsCert ??= `${a.tlsSecretDir}/tls.crt`;
    a.tlsKey ??= `${a.tlsSecretDir}/tls.key`;
    a.clientCa ??= `${a.tlsSecretDir}/ca.crt`;
  }
  if (a.runtime && a.runtime !== "kubelet" && a.runtime !== "docker") {
    fail(`--runtime "${a.runtime}" is invalid: use "kubelet" or "docker"`);
  }
  if (!["none", "gzip", "zstd"].includes(a.imageCompression)) {
    fail(`--image-compression "${a.imageCompression}" is invalid: use none, gzip or zstd`);
  }
  if (!a.insecureDev) {
    if (!a.tlsCert || !a.tlsKey || !a.clientCa) {
      fail(
        "Mutual TLS is mandatory: give --tls-cert, --tls-key and --client-ca (or --insecure-dev)",
      );
    }
    if (a.allowedClients.length === 0) {
      fail("Give at least one --allowed-client identity (a certificate CN or a URI SAN)");
    }
  }
  if (
    a.kubeletUrl &&
    !(a.kubeletCa && (a.kubeletTokenFile || (a.kubeletClientCert && a.kubeletClientKey)))
  ) {
    fail(
      "--kubelet-url needs --kubelet-ca and either --kubelet-token-file or " +
        "--kubelet-client-cert with --kubelet-client-key",
    );
  }
  return a;
}

async function nodeRuntimeVersion(kube: KubeHttp, node: string): Promise<string | undefined> {
  const res = await kube.request(`/api/v1/nodes/${encodeURIComponent(node)}`);
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`Cannot read node "${node}": the API server returned ${res.status}`);
  }
  const n = await res.json() as { status?: { nodeInfo?: { containerRuntimeVersion?: string } } };
  return n.status?.nodeInfo?.containerRuntimeVersion;
}

/** Builds the runtime driver the node needs. */
export async function buildDriver(
  a: AgentArgs,
  kube: KubeHttp | undefined,
  log: Logger,
): Promise<{
  driver: RuntimeDriver;
  images?: ImagePublisher;
  readStats?: OptionalStats;
  volumes?: VolumeCarrier;
}> {
  const runtimeVersion = kube && !a.runtime
    ? await nodeRuntimeVersion(kube, a.nodeName)
    : undefined;
  const choice = selectDriver({
    override: a.runtime,
    containerRuntimeVersion: runtimeVersion,
    dockerSocket: a.dockerSocket,
  });
  log.info("runtime driver chosen", { driver: choice.driver, reason: choice.reason });
  // Which AES-GCM encrypting classes use (storage/aes_gcm.ts): OpenSSL's is ~5x WebCrypto's here.
  const aesGcm = defaultAesGcmEngine();
  log.info("checkpoint encryption engine", {
    aesGcm,
    ...(aesGcm === "webcrypto" ? { why: `libcrypto.so.3: ${libcrypto().why}` } : {}),
  });
  const images = a.imageCompression === "none"
    ? createImagePublisher()
    : createOciImagePublisher({ compression: a.imageCompression });
  if (choice.driver === "docker") {
    return {
      driver: createDockerDriver({ socketPath: a.dockerSocket ?? "/var/run/docker.sock" }),
      images,
      readStats: readArchiveStats,
    };
  }
  let access: Parameters<typeof createKubeletDriver>[0]["access"];
  if (a.kubeletUrl) {
    const url = await resolveKubeletUrl(a.kubeletUrl, a.nodeName, kube);
    log.info("kubelet reached directly", { url });
    access = {
      mode: "direct",
      url,
      caCert: await Deno.readTextFile(a.kubeletCa!),
      ...(a.kubeletTokenFile ? { tokenFile: a.kubeletTokenFile } : {
        clientCert: await Deno.readTextFile(a.kubeletClientCert!),
        clientKey: await Deno.readTextFile(a.kubeletClientKey!),
      }),
    };
  } else if (kube) {
    access = { mode: "proxy", kube };
  } else {
    throw new Error(
      "The kubelet driver needs --kubelet-url (direct) or cluster access (--kubeconfig or in-cluster)",
    );
  }
  return {
    driver: createKubeletDriver({
      nodeName: a.nodeName,
      access,
      runtimeVersion,
      kubeletRootDir: a.kubeletRootDir,
      kubeletRootMount: a.kubeletRootMount,
      criuLogDirs: a.criuLogDirs,
    }),
    images,
    readStats: readArchiveStats,
    volumes: createVolumeCarrier({
      kubeletRoot: a.kubeletRootMount ?? a.kubeletRootDir ?? "/var/lib/kubelet",
      busybox: a.busybox,
    }),
  };
}

/** Writes the pair of `--tls-secret` out, waiting (up to 5 minutes) for the controller to create it. */
async function waitForTlsSecret(
  a: AgentArgs,
  kube: KubeHttp | undefined,
  log: Logger,
): Promise<string> {
  if (!kube) throw new Error("--tls-secret needs cluster access (in-cluster or --kubeconfig)");
  const [ns, name] = a.tlsSecret!.split("/");
  const deadline = Date.now() + 5 * 60_000;
  for (let i = 0;; i++) {
    const got = await fetchTlsSecret(kube, ns, name, { dir: a.tlsSecretDir });
    if (got) return got.version;
    if (Date.now() > deadline) {
      throw new Error(
        `The TLS Secret "${a.tlsSecret}" did not appear in 5 minutes (the controller creates it)`,
      );
    }
    if (i === 0) log.info("waiting for the TLS Secret", { secret: a.tlsSecret });
    await new Promise((r) => setTimeout(r, 2000));
  }
}

/** The agent's logger: JSON lines on stderr, as the controller's. */
const AGENT_LOG = new Logger({ component: "lpm-agent" });

type OptionalStats = (archivePath: string) => Promise<Record<string, number> | undefined>;

/** PrepareRestore on this node: the CRI pull, or for an encrypted image decrypt and import. */
function prepareWith(a: AgentArgs, kube: KubeHttp | undefined) {
  return (req: PrepareRestoreRequestMsg, signal: AbortSignal) =>
    prepareImage(req, {
      signal,
      runtimeEndpoint: a.runtimeEndpoint,
      resolveClass: (name) =>
        resolveStorageClass({ name }, { kube, allowInline: a.allowInlineStorage }),
    });
}

/** Runs the agent until SIGTERM/SIGINT. */
export async function main(args: string[]): Promise<number> {
  const log = AGENT_LOG;
  if (args.includes("--help") || args.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  let a: AgentArgs;
  try {
    a = parseAgentArgs(await applyNodeFlags(args));
  } catch (err) {
    console.error((err as Error).message);
    return 2;
  }
  const inCluster = !!Deno.env.get("KUBERNETES_SERVICE_HOST");
  const kube = a.kubeconfig || inCluster ? kubeHttp(loadKubeConfig(a.kubeconfig)) : undefined;
  let tlsVersion = a.tlsSecret ? await waitForTlsSecret(a, kube, log) : undefined;
  const { driver, images, readStats, volumes } = await buildDriver(a, kube, log);
  const security: AgentSecurity = a.insecureDev ? { mode: "insecure-dev" } : {
    mode: "mtls",
    files: { cert: a.tlsCert!, key: a.tlsKey!, ca: a.clientCa! },
    allowedClients: a.allowedClients,
  };
  // Frozen final checkpoints need the node's containerd (the CRI endpoint's socket).
  let freezes: Freezes | undefined;
  let containerd: ContainerdTasks | undefined;
  if (driver.name === "kubelet" && a.runtimeEndpoint?.startsWith("unix://")) {
    containerd = connectContainerd(a.runtimeEndpoint);
    freezes = await openFreezes({
      dir: `${a.stateDir}/freezes`,
      freezer: createPodFreezer({ containerd, dump: (ref, o) => driver.checkpoint(ref, o) }),
      onThawed: (rec, how) =>
        log.warn(`pod thawed (${how})`, { key: rec.key, pod: `${rec.namespace}/${rec.pod}` }),
    });
  }
  const server = await startAgentServer({
    nodeName: a.nodeName,
    listen: a.listen,
    security,
    stateDir: a.stateDir,
    driver,
    images,
    readStats,
    volumes,
    freezes,
    containerStarts: a.runtimeEndpoint
      ? (ns, pod) => criContainerStarts(a.runtimeEndpoint!, ns, pod)
      : undefined,
    preCopy: containerd ? preCopyOptions(a, containerd) : undefined,
    resolveClass: (ref) => resolveStorageClass(ref, { kube, allowInline: a.allowInlineStorage }),
    prepareImage: prepareWith(a, kube),
    log,
  });
  // The kubelet never removes checkpoint archives: sweep the ones no operation owns.
  const sweep = () => {
    const kubelet = driver as Partial<KubeletDriver>;
    if (!kubelet.sweepArchives) return;
    const keep = new Set(server.operations.list().flatMap((o) => o.localPaths ?? []));
    kubelet.sweepArchives({ olderThanMs: 30 * 60_000, keep }).then(
      (removed) => removed.length && log.info("removed stale kubelet archives", { removed }),
      (e) => log.warn("archive sweep failed", { error: (e as Error).message }),
    );
  };
  sweep();
  const sweeper = setInterval(sweep, 10 * 60_000);
  // A renewed Secret (the controller rotates the pairs) is written out and reloaded.
  const tlsRefresh = a.tlsSecret && kube
    ? setInterval(() => {
      const [ns, name] = a.tlsSecret!.split("/");
      fetchTlsSecret(kube, ns, name, { dir: a.tlsSecretDir }).then(async (got) => {
        if (!got || got.version === tlsVersion) return;
        tlsVersion = got.version;
        await server.reloadTls();
        log.info("TLS pair renewed from its Secret", { secret: a.tlsSecret });
      }).catch((e) => log.warn("TLS Secret refresh failed", { error: (e as Error).message }));
    }, 60_000)
    : undefined;
  let health: Deno.HttpServer | undefined;
  if (a.healthListen) {
    const [host, port] = [
      a.healthListen.slice(0, a.healthListen.lastIndexOf(":")),
      Number(a.healthListen.slice(a.healthListen.lastIndexOf(":") + 1)),
    ];
    health = Deno.serve({ hostname: host, port, onListen: () => {} }, (req) => {
      const path = new URL(req.url).pathname;
      if (path === "/healthz" || path === "/readyz") return new Response("ok\n");
      return new Response("not found\n", { status: 404 });
    });
  }
  const done = Promise.withResolvers<void>();
  const stop = (sig: string) => () => {
    log.info("shutting down", { signal: sig });
    done.resolve();
  };
  const onTerm = stop("SIGTERM");
  const onInt = stop("SIGINT");
  const onHup = () => {
    server.reloadTls().then(
      () => log.info("TLS certificates reloaded (SIGHUP)"),
      (e) => log.error("TLS reload failed", { error: (e as Error).message }),
    );
  };
  Deno.addSignalListener("SIGTERM", onTerm);
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGHUP", onHup);
  await done.promise;
  Deno.removeSignalListener("SIGTERM", onTerm);
  Deno.removeSignalListener("SIGINT", onInt);
  Deno.removeSignalListener("SIGHUP", onHup);
  clearInterval(sweeper);
  if (tlsRefresh) clearInterval(tlsRefresh);
  await health?.shutdown();
  await server.close({ graceMs: 10_000 });
  // Deadlines stay on disk: the next agent process re-arms them (or thaws the expired).
  freezes?.close();
  containerd?.close?.();
  kube?.close();
  log.info("agent stopped");
  return 0;
}

/** Pre-copy through the node's runc, on the containers containerd knows. */
function preCopyOptions(
  a: AgentArgs,
  containerd: ContainerdTasks,
): NonNullable<AgentServerOptions["preCopy"]> {
  return {
    runc: a.runc,
    runcRoot: a.runcRoot,
    pushParent: pushParentImage,
    containerId: async (ns, pod, container) => {
      const found = (await containerd.podContainers(ns, pod)).find((c) => c.name === container);
      if (!found) {
        throw new Error(`Pod "${ns}/${pod}" has no running container "${container}" on this node`);
      }
      return found.id;
    },
  };
}

if (import.meta.main) {
  main(Deno.args).then((code) => Deno.exit(code), (err) => {
    AGENT_LOG.error("agent failed", { error: (err as Error).message });
    Deno.exit(1);
  });
}
