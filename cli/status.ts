/**
 * `deno task status [-n ns | -A] [--kubeconfig path]`: a table of
 * migrations, checkpoints and storage classes, with phases and timings.
 * `--logs <migration>` prints the CRIU logs the node agents kept instead.
 * @module
 */
import { formatBytes } from "./progress.ts";
import * as k8s from "@kubernetes/client-node";
import type { CheckpointStorageClass, PodCheckpoint, PodMigration } from "../api/mod.ts";
import { apiMessage, LpmClient } from "../kube/lpm_client.ts";
import { parseCommandArgs } from "../base/args.ts";
import { kubeconfigPath } from "../kube/config.ts";
import { timingSummary } from "./migrate.ts";
import { logSources, printLogs, readLocalEnvironment } from "./_logs.ts";
import { parseOverrides } from "../contract/discovery.ts";

const USAGE = `usage: deno task status [-n <namespace> | -A] [--kubeconfig <path>]
       deno task status --logs <migration> [-n <namespace>] [--kubeconfig <path>]
         [--agent <node>=<host>:<port>,...] [--tls-cert <file> --tls-key <file> --tls-ca <file>]
         [--env <env.json>]

Shows PodMigrations, PodCheckpoints and CheckpointStorageClasses.

--logs prints the CRIU logs the node agents kept for the migration's (or a
PodCheckpoint's) failed container checkpoints (agent RPC GetOperationLog). It
talks to the agents with mutual TLS as the controller: --tls-* name the client
certificate, key and the CA of the agents' serving certificates; --agent gives
agent addresses (else: the agents' DaemonSet pods). In the local environment
(deno task cluster:up) both come from its env.json.`;

/** Formats rows as an aligned table. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => (c ?? "").padEnd(widths[i])).join("  ").trimEnd()).join(
    "\n",
  );
}

/** Runs the command (also `kubectl lpm status`); returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(args, {
    known: [
      "namespace",
      "all-namespaces",
      "kubeconfig",
      "help",
      "logs",
      "agent",
      "tls-cert",
      "tls-key",
      "tls-ca",
      "env",
    ],
    booleans: ["all-namespaces", "help"],
    aliases: { n: "namespace", A: "all-namespaces", h: "help" },
  }, USAGE);
  if ("exit" in parsed) return parsed.exit;
  const a = parsed.args;
  const ns = a.flags["all-namespaces"] ? "" : a.flags.namespace ?? "default";
  const kc = new k8s.KubeConfig();
  if (a.flags.logs) {
    let env;
    try {
      env = readLocalEnvironment(a.flags.env);
    } catch (err) {
      console.error((err as Error).message);
      return 2;
    }
    kc.loadFromFile(
      kubeconfigPath(a.flags.kubeconfig ?? Deno.env.get("KUBECONFIG") ?? env?.kube?.kubeconfig),
    );
    return await logs(a.flags, ns || "default", kc, env);
  }
  kc.loadFromFile(kubeconfigPath(a.flags.kubeconfig));
  const lpm = new LpmClient(kc);
  try {
    const classes = await lpm.list<CheckpointStorageClass>("checkpointstorageclasses");
    console.log("STORAGE CLASSES");
    console.log(table([
      [
        "NAME",
        "PROVIDER",
        "DEFAULT",
        "PHASE",
        "CHECKPOINTS",
        "BYTES",
        "NEXT COLLECTION",
        "MESSAGE",
      ],
      ...classes.map((c) => {
        const r = c.status?.retention;
        return [
          c.metadata?.name ?? "",
          c.spec.provider,
          c.spec.default ? "yes" : "",
          c.status?.phase ?? "",
          r?.checkpoints !== undefined ? String(r.checkpoints) : "-",
          r?.bytes !== undefined ? formatBytes(r.bytes) : "-",
          r?.nextRunTime ?? "-",
          (c.status?.message ?? "").slice(0, 80),
        ];
      }),
    ]));
    const pms = await lpm.list<PodMigration>("podmigrations", ns);
    console.log("\nPOD MIGRATIONS");
    console.log(table([
      ["NAMESPACE", "NAME", "POD", "SOURCE", "TARGET", "PHASE", "TIMINGS / MESSAGE"],
      ...pms.map((m) => [
        m.metadata?.namespace ?? "",
        m.metadata?.name ?? "",
        m.spec.podName,
        m.status?.sourceNode ?? "",
        m.spec.targetNode ?? m.status?.targetNode ?? "(choosing)",
        m.status?.phase ?? "",
        m.status?.phase === "Succeeded"
          ? timingSummary(m)
          : (m.status?.message ?? "").slice(0, 100),
      ]),
    ]));
    const pcs = await lpm.list<PodCheckpoint>("podcheckpoints", ns);
    console.log("\nPOD CHECKPOINTS");
    console.log(table([
      ["NAMESPACE", "NAME", "POD", "NODE", "PHASE", "IMAGES"],
      ...pcs.map((p) => [
        p.metadata?.namespace ?? "",
        p.metadata?.name ?? "",
        p.spec.podName,
        p.status?.nodeName ?? "",
        p.status?.phase ?? "",
        (p.status?.containers ?? []).map((c) => `${c.name}=${c.image ?? "-"}`).join(" "),
      ]),
    ]));
  } catch (err) {
    console.error(`Cannot read lpm resources: ${apiMessage(err)}`);
    return 1;
  }
  return 0;
}

async function logs(
  flags: Record<string, string>,
  ns: string,
  kc: k8s.KubeConfig,
  env: ReturnType<typeof readLocalEnvironment>,
): Promise<number> {
  const envTls = env?.lpm?.tls;
  const tls = {
    cert: flags["tls-cert"] ?? envTls?.controllerCert,
    key: flags["tls-key"] ?? envTls?.controllerKey,
    ca: flags["tls-ca"] ?? envTls?.ca,
  };
  if (!tls.cert || !tls.key || !tls.ca) {
    console.error(
      "--logs talks to the node agents with mutual TLS: give --tls-cert, --tls-key and --tls-ca " +
        "(a client certificate the agents allow, e.g. the controller's), or run it next to a " +
        "local environment (env.json)",
    );
    return 2;
  }
  let overrides: Record<string, string>;
  try {
    overrides = {
      ...Object.fromEntries((env?.lpm?.agents ?? []).map((x) => [x.node, x.address])),
      ...parseOverrides(flags.agent ? [flags.agent] : []),
    };
  } catch (err) {
    console.error((err as Error).message);
    return 2;
  }
  try {
    const sources = await logSources(new LpmClient(kc), ns, flags.logs);
    if (!sources.length) {
      console.error(`"${ns}/${flags.logs}" has no container checkpoints (yet): nothing to show`);
      return 1;
    }
    const found = await printLogs(sources, {
      tls: { cert: tls.cert, key: tls.key, ca: tls.ca },
      overrides,
      core: kc.makeApiClient(k8s.CoreV1Api),
    });
    return found > 0 ? 0 : 1;
  } catch (err) {
    console.error(`Cannot show the logs of "${ns}/${flags.logs}": ${apiMessage(err)}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
