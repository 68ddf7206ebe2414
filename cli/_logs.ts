/**
 * `deno task status --logs <migration>`: the CRIU logs the node agents kept
 * for a migration's (or a PodCheckpoint's) container checkpoints. Finds each
 * ContainerCheckpoint's node and operation id, asks that node's agent
 * (`GetOperationLog`, mutual TLS with the controller's client certificate)
 * and prints the logs.
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import type { ContainerCheckpoint, PodMigration } from "../api/mod.ts";
import type { LpmClient } from "../kube/lpm_client.ts";
import { GrpcAgentConnector } from "../contract/client.ts";
import type { TlsFiles } from "../contract/tls.ts";

/** Label of a ContainerCheckpoint naming its PodCheckpoint (controllers/pod_checkpoint.ts). */
const POD_CHECKPOINT_LABEL = "lpm.my.domain/pod-checkpoint";

/** What of the local environment's `env.json` the CLI uses (written by `cluster:up`). */
export interface LocalEnvironment {
  kube?: { kubeconfig?: string };
  lpm?: {
    agents?: { node: string; address: string }[];
    tls?: { ca: string; controllerCert: string; controllerKey: string };
  };
}

/** Reads the local environment's description: `path`, `$LPM_TEST_ENV`, `$LPM_STATE_DIR` or `.lpm/`. */
export function readLocalEnvironment(path?: string): LocalEnvironment | undefined {
  const state = Deno.env.get("LPM_STATE_DIR") ?? new URL("../.lpm", import.meta.url).pathname;
  const file = path ?? Deno.env.get("LPM_TEST_ENV") ?? `${state}/env.json`;
  try {
    return JSON.parse(Deno.readTextFileSync(file)) as LocalEnvironment;
  } catch (err) {
    if (path) throw new Error(`Cannot read environment file "${path}": ${(err as Error).message}`);
    return undefined;
  }
}

/** One container checkpoint whose agent may hold a log. */
export interface LogSource {
  /** ContainerCheckpoint name. */
  containerCheckpoint: string;
  /** Container name. */
  container: string;
  /** Node that ran the checkpoint (empty when it never started). */
  node: string;
  /** The agent's operation id (empty when it never started). */
  operationId: string;
  /** Phase and message of the ContainerCheckpoint. */
  phase: string;
  message: string;
}

/**
 * The container checkpoints of `name`: a PodMigration's PodCheckpoint, or a
 * PodCheckpoint of that name.
 */
export async function logSources(lpm: LpmClient, ns: string, name: string): Promise<LogSource[]> {
  const pm = await lpm.get<PodMigration>("podmigrations", ns, name);
  const pc = pm?.status?.podCheckpointRef?.name ?? name;
  if (!pm && !(await lpm.get("podcheckpoints", ns, name))) {
    throw new Error(`Neither a PodMigration nor a PodCheckpoint "${ns}/${name}" exists`);
  }
  const ccs = await lpm.list<ContainerCheckpoint>("containercheckpoints", ns, {
    labelSelector: `${POD_CHECKPOINT_LABEL}=${pc}`,
  });
  return ccs.map((cc) => ({
    containerCheckpoint: cc.metadata?.name ?? "",
    container: cc.spec.containerName,
    node: cc.status?.nodeName ?? "",
    operationId: cc.status?.operationId ?? "",
    phase: cc.status?.phase ?? "",
    message: cc.status?.message ?? "",
  }));
}

/** Options of {@linkcode printLogs}. */
export interface PrintLogsOptions {
  /** Client certificate, key and the CA of the agents' serving certificates. */
  tls: TlsFiles;
  /** `node -> host:port` (else the agents are found through their DaemonSet pods). */
  overrides: Record<string, string>;
  /** Lists the agent pods when a node has no override. */
  core?: k8s.CoreV1Api;
  /** Where to write (default stdout). */
  write?: (text: string) => void;
}

/** Prints the kept logs of `sources`; returns how many were found. */
export async function printLogs(sources: LogSource[], opts: PrintLogsOptions): Promise<number> {
  const write = opts.write ?? ((t: string) => console.log(t));
  const agents = new GrpcAgentConnector({
    security: { mode: "mtls", files: opts.tls },
    kube: opts.core,
    overrides: opts.overrides,
    timeoutMs: 15_000,
  });
  let found = 0;
  try {
    for (const s of sources) {
      const head =
        `=== ContainerCheckpoint "${s.containerCheckpoint}" (container "${s.container}", ` +
        `node "${s.node || "-"}", operation "${s.operationId || "-"}", ${s.phase || "no phase"})`;
      if (!s.node || !s.operationId) {
        write(`${head}\nThe checkpoint never started on a node: no log.\n`);
        continue;
      }
      try {
        const log = await (await agents.clientFor(s.node)).getOperationLog(s.operationId);
        found++;
        write(
          `${head}\nCRIU log ${log.sourcePath} as kept by the agent${
            log.truncated ? " (its last 1 MiB)" : ""
          }:\n${log.content}`,
        );
      } catch (err) {
        write(`${head}\nNo log: ${(err as Error).message}\n${s.message}\n`);
      }
    }
  } finally {
    agents.close();
  }
  return found;
}
