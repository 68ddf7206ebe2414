/**
 * The lpm controller manager process.
 *
 *   deno task controller [--kubeconfig path] [--agent node=host:port ...]
 *     --tls-cert controller.crt --tls-key controller.key --tls-ca agents-ca.crt
 *     [--leader-elect --leader-elect-namespace lpm-system]
 *     [--health-addr 127.0.0.1:8080] [--poll-ms 1000] [--validation-period-s 60]
 *     [--retention-period-s 600]
 *     [--max-parallel-migrations 5] [--max-outbound-per-node 2]
 *     [--webhook-addr 0.0.0.0:9443 (--webhook-url <url> | --webhook-service ns/name)]
 *     [--insecure-dev]
 *
 * In a cluster it reads the in-cluster configuration; elsewhere a kubeconfig.
 * Agents are found by node name (agent DaemonSet pods), or by --agent
 * overrides for agents that run as host processes.
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import { GrpcAgentConnector } from "../contract/client.ts";
import { AGENT_LABEL, AGENT_NAMESPACE, parseOverrides } from "../contract/discovery.ts";
import { type Args, parseCommandArgs } from "../base/args.ts";
import { startManager } from "./manager.ts";
import { DEFAULT_MIGRATION_LIMITS, type MigrationLimits } from "./migration_limits.ts";
import { Logger } from "../base/log.ts";
import { Informer } from "./runtime/informer.ts";
import { ensureCertificates } from "../contract/cert_secrets.ts";
import { type KubeHttp, kubeHttp } from "../kube/http.ts";
import { type KubeAccess, KubeConfigFile } from "../kube/kubeconfig.ts";
import type { EvictionWebhookOptions } from "./eviction_webhook.ts";

const USAGE = `usage: deno task controller [--kubeconfig <path>] [--agent <node>=<host:port> ...]
       --tls-cert <file> --tls-key <file> --tls-ca <file> [--tls-server-name <name, "{node}" = the node>]
       [--leader-elect] [--leader-elect-namespace <ns>] [--health-addr <host:port>]
       [--poll-ms <ms>] [--validation-period-s <s>] [--retention-period-s <s>] [--insecure-dev]
       [--max-parallel-migrations <n>] [--max-outbound-per-node <n>]  (default 5 and 2)
       [--tls-secrets <namespace>]  (instead of --tls-*: create and rotate lpm's CA and the
        agents' pairs as Secrets there, and issue this controller's pair in --tls-dir)
       [--ca-secrets <namespace>]  (lpm's CA Secret: a namespace no agent can read;
        default: --tls-secrets)
       [--tls-dir <dir>]  (default /tmp/lpm-controller-tls)
       [--webhook-addr <host:port>]  (serve the pods/eviction webhook over HTTPS; off when unset)
       [--webhook-url <https://host:port> | --webhook-service <namespace>/<name>[:port]]
        (how the API server reaches it: a URL for a host process, else a Service)
       [--webhook-secrets <namespace>]  (lpm's CA and the webhook's certificate Secret;
        default: --tls-secrets, else lpm-system)`;

const SPEC = {
  known: [
    "agent",
    "kubeconfig",
    "tls-cert",
    "tls-key",
    "tls-ca",
    "tls-server-name",
    "leader-elect",
    "leader-elect-namespace",
    "health-addr",
    "poll-ms",
    "validation-period-s",
    "retention-period-s",
    "max-parallel-migrations",
    "max-outbound-per-node",
    "insecure-dev",
    "tls-secrets",
    "ca-secrets",
    "tls-dir",
    "webhook-addr",
    "webhook-url",
    "webhook-service",
    "webhook-secrets",
    "help",
  ],
  booleans: ["leader-elect", "insecure-dev", "help"],
  multiple: ["agent"],
};

/** The flags, checked: what the controller runs with, or an exit code. */
function parseFlags(args: string[]): { a: Args; limits: MigrationLimits } | number {
  const parsed = parseCommandArgs(args, SPEC, USAGE);
  if ("exit" in parsed) return parsed.exit;
  const a = parsed.args;
  const limits = migrationLimits(a.flags);
  if (typeof limits === "string") {
    console.error(`${limits}\n\n${USAGE}`);
    return 2;
  }
  const f = a.flags;
  if (
    f["insecure-dev"] !== "true" && !f["tls-secrets"] &&
    !(f["tls-cert"] && f["tls-key"] && f["tls-ca"])
  ) {
    console.error(
      `--tls-cert, --tls-key and --tls-ca are required (agents only accept mutual TLS)\n\n${USAGE}`,
    );
    return 2;
  }
  if (f["webhook-service"] && !/^[^/:]+\/[^/:]+(:\d+)?$/.test(f["webhook-service"])) {
    console.error(`--webhook-service must be <namespace>/<name>[:port]\n\n${USAGE}`);
    return 2;
  }
  if (f["webhook-addr"] && !f["webhook-url"] === !f["webhook-service"]) {
    console.error(`--webhook-addr needs one of --webhook-url and --webhook-service\n\n${USAGE}`);
    return 2;
  }
  return { a, limits };
}

/** The eviction webhook's options from the flags, or undefined when it is off. */
function webhookOptions(a: Args, kc: KubeAccess): EvictionWebhookOptions | undefined {
  const f = a.flags;
  if (!f["webhook-addr"]) return undefined;
  const [hostname, port] = f["webhook-addr"].split(/:(?=\d+$)/);
  const svc = /^([^/]+)\/([^:]+)(?::(\d+))?$/.exec(f["webhook-service"] ?? "");
  return {
    hostname,
    port: Number(port),
    clientConfig: f["webhook-url"]
      ? { url: f["webhook-url"] }
      : { service: { namespace: svc![1], name: svc![2], port: svc![3] ? Number(svc![3]) : 443 } },
    secretsNamespace: f["webhook-secrets"] ?? f["tls-secrets"] ?? "lpm-system",
    caNamespace: f["ca-secrets"],
    workDir: `${f["tls-dir"] ?? "/tmp/lpm-controller-tls"}/webhook`,
    kube: kubeHttp(kc),
  };
}

/** The agent connector: agents found in a watched cache of their pods, mTLS from files or Secrets. */
async function connectAgents(
  a: Args,
  kc: KubeAccess,
  log: Logger,
): Promise<{ agents: GrpcAgentConnector; stop(): Promise<void> }> {
  const insecure = a.flags["insecure-dev"] === "true";
  const secretsNs = a.flags["tls-secrets"];
  if (insecure) {
    log.warn("--insecure-dev: talking to agents WITHOUT TLS; never use this outside development");
  }
  // Agents are found in a watched cache of their pods, not by a list per lookup.
  const agentPods = new Informer<k8s.V1Pod>(kc, `/api/v1/namespaces/${AGENT_NAMESPACE}/pods`, {
    labelSelector: AGENT_LABEL,
    onError: (err) => log.warn("watch error; restarting", { informer: "agent pods", err }),
  });
  await agentPods.start();
  let files = { cert: a.flags["tls-cert"], key: a.flags["tls-key"], ca: a.flags["tls-ca"] };
  let rotation: ReturnType<typeof setInterval> | undefined;
  if (secretsNs && !insecure) {
    const kube = kubeHttp(kc);
    const dir = a.flags["tls-dir"] ?? "/tmp/lpm-controller-tls";
    const namespaces = { agents: secretsNs, ca: a.flags["ca-secrets"] ?? secretsNs };
    files = await rotateCertificates(kube, namespaces, dir, log);
    rotation = setInterval(() => {
      rotateCertificates(kube, namespaces, dir, log).catch((err) =>
        log.warn("certificate rotation failed", { error: (err as Error).message })
      );
    }, 10 * 60_000);
  }
  const agents = new GrpcAgentConnector({
    security: insecure
      ? { mode: "insecure-dev" }
      : { mode: "mtls", files, serverName: a.flags["tls-server-name"] },
    overrides: parseOverrides(a.lists.agent ?? []),
    kube: agentPods,
  });
  return {
    agents,
    async stop() {
      if (rotation) clearInterval(rotation);
      await agentPods.stop();
    },
  };
}

function seconds(flag: string | undefined): number | undefined {
  return flag ? Number(flag) * 1000 : undefined;
}

/** Runs the manager until SIGINT/SIGTERM. */
export async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args);
  if (typeof flags === "number") return flags;
  const { a, limits } = flags;
  const log = new Logger({ component: "lpm-controller" });
  const kc = KubeConfigFile.load(a.flags.kubeconfig);
  const connected = await connectAgents(a, kc, log);
  const [host, port] = (a.flags["health-addr"] ?? "127.0.0.1:8080").split(/:(?=\d+$)/);
  const manager = await startManager({
    kubeConfig: kc,
    agents: connected.agents,
    logger: log,
    healthHost: host,
    healthPort: Number(port),
    pollMs: a.flags["poll-ms"] ? Number(a.flags["poll-ms"]) : undefined,
    validationPeriodMs: seconds(a.flags["validation-period-s"]),
    retentionPeriodMs: seconds(a.flags["retention-period-s"]),
    migrationLimits: limits,
    evictionWebhook: webhookOptions(a, kc),
    leaderElection: a.flags["leader-elect"] === "true"
      ? { namespace: a.flags["leader-elect-namespace"] ?? "lpm-system" }
      : undefined,
  });
  log.info("manager running", {
    health: `${host}:${manager.healthPort}`,
    webhook: manager.webhookPort,
    agents: a.lists.agent ?? [],
  });
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
  });
  log.info("shutting down");
  await manager.stop();
  await connected.stop();
  return 0;
}

/** The migration limits from the flags, or what is wrong with them. */
function migrationLimits(flags: Record<string, string | undefined>): MigrationLimits | string {
  const limits = { ...DEFAULT_MIGRATION_LIMITS };
  for (
    const [flag, field] of [
      ["max-parallel-migrations", "maxParallel"],
      ["max-outbound-per-node", "maxOutboundPerNode"],
    ] as const
  ) {
    const v = flags[flag];
    if (v === undefined) continue;
    if (!/^[1-9][0-9]*$/.test(v)) return `--${flag} must be a whole number above 0, not "${v}"`;
    limits[field] = Number(v);
  }
  return limits;
}

/**
 * Makes sure lpm's CA (in `namespaces.ca`) and every node's agent pair (in
 * `namespaces.agents`) exist as Secrets and are not near expiry
 * (contract/cert_secrets.ts); returns this controller's client pair.
 */
async function rotateCertificates(
  kube: KubeHttp,
  namespaces: { agents: string; ca: string },
  dir: string,
  log: Logger,
): Promise<{ cert: string; key: string; ca: string }> {
  const res = await kube.request("/api/v1/nodes");
  if (!res.ok) {
    throw new Error(
      `Cannot list nodes for their agent certificates: ${res.status} ${await res.text()}`,
    );
  }
  const nodes = ((await res.json()) as { items: { metadata: { name: string } }[] }).items
    .map((n) => n.metadata.name);
  const tls = await ensureCertificates(kube, {
    namespace: namespaces.agents,
    caNamespace: namespaces.ca,
    nodes,
    workDir: dir,
  });
  if (tls.written.length) log.info("agent certificates issued", { secrets: tls.written });
  return tls.files;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
