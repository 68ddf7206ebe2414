/**
 * The agent's gRPC client for the controller: one {@linkcode AgentClient} per
 * node agent, and {@linkcode GrpcAgentConnector}, the controllers'
 * `AgentConnector` that finds each node's agent (see `discovery.ts`) and
 * talks to it over mutual TLS.
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import type {
  AgentConnector,
  CheckpointRequest,
  FreezeStatus,
  NodeAgent,
  OperationStatus,
  PreCopyRequest,
} from "./agent.ts";
import {
  agentService,
  type CheckpointRequestMsg,
  type ControlFreezeRequestMsg,
  type FreezePodRequestMsg,
  type FreezeStateMsg,
  type HealthResponseMsg,
  type OperationLogMsg,
  type OperationMsg,
  type PreCopyRequestMsg,
  type PrepareRestoreRequestMsg,
  type RestoreContainerRequestMsg,
} from "./proto.ts";
import {
  type AgentPodCache,
  type PodLister,
  resolveAgent,
  type ResolveAgentOptions,
} from "./discovery.ts";
import { agentServerName, type ClientTlsOptions, createClientTls, type TlsFiles } from "./tls.ts";

/** How a client authenticates. */
export type ClientSecurity =
  | { mode: "mtls"; files: TlsFiles; serverName?: string }
  | { mode: "insecure-dev" };

/** Options for {@linkcode AgentClient.connect}. */
export interface AgentClientOptions {
  /** Client security. */
  security: ClientSecurity;
  /** Deadline of unary calls, ms (default 30 s; work runs as operations). */
  timeoutMs?: number;
}

/** Converts a wire Operation into the controllers' OperationStatus. */
export function toOperationStatus(m: OperationMsg): OperationStatus {
  const r = m.result;
  return {
    id: m.id,
    phase: m.phase as OperationStatus["phase"],
    step: m.step || undefined,
    bytesDone: m.bytesDone,
    bytesTotal: m.bytesTotal,
    message: m.message || undefined,
    result: r && r.archive
      ? {
        archive: r.archive,
        image: {
          reference: r.image?.reference ?? "",
          digest: r.image?.digest ?? "",
          tag: r.image?.tag || undefined,
        },
        criuStats: r.criuStats && Object.keys(r.criuStats).length ? r.criuStats : undefined,
        runtime: r.runtime
          ? {
            name: r.runtime.name,
            version: r.runtime.version || undefined,
            criuVersion: r.runtime.criuVersion || undefined,
          }
          : undefined,
        checkpointTime: r.checkpointTime || undefined,
        volumes: r.volumes?.image
          ? { names: r.volumes.names ?? [], image: r.volumes.image, size: Number(r.volumes.size) }
          : undefined,
      }
      : undefined,
    preCopy: m.preCopy?.image?.reference && m.preCopy.round
      ? {
        image: { reference: m.preCopy.image.reference, digest: m.preCopy.image.digest },
        round: {
          round: m.preCopy.round.round,
          pages: Number(m.preCopy.round.pages),
          dirtyPages: Number(m.preCopy.round.dirtyPages),
          dirtyBytes: Number(m.preCopy.round.dirtyBytes),
          dumpMs: m.preCopy.round.dumpMs,
        },
        layers: (m.preCopy.layers ?? []).map((l) => ({ digest: l.digest, size: Number(l.size) })),
      }
      : undefined,
  };
}

/** A client of one agent. */
export class AgentClient {
  private constructor(
    readonly address: string,
    private readonly client: grpc.Client,
    private readonly timeoutMs: number,
  ) {}

  /** Connects (lazily) to the agent at `address` (`host:port`). */
  static async connect(address: string, opts: AgentClientOptions): Promise<AgentClient> {
    const Service = agentService();
    let client: grpc.Client;
    if (opts.security.mode === "mtls") {
      const tlsOpts: ClientTlsOptions = { serverName: opts.security.serverName };
      const tls = await createClientTls(opts.security.files, tlsOpts);
      client = new Service(address, tls.credentials, tls.channelOptions);
    } else {
      client = new Service(address, grpc.credentials.createInsecure());
    }
    return new AgentClient(address, client, opts.timeoutMs ?? 30_000);
  }

  #unary<Res>(method: string, req: unknown): Promise<Res> {
    const deadline = new Date(Date.now() + this.timeoutMs);
    return new Promise((resolve, reject) => {
      // deno-lint-ignore no-explicit-any
      (this.client as any)[method](req, { deadline }, (err: grpc.ServiceError | null, res: Res) => {
        if (err) {
          reject(
            Object.assign(
              new Error(`Agent ${this.address} ${method} failed: ${err.details || err.message}`),
              { code: err.code },
            ),
          );
        } else resolve(res);
      });
    });
  }

  /** Starts (or finds) a checkpoint operation. */
  checkpoint(req: CheckpointRequestMsg): Promise<OperationMsg> {
    return this.#unary("Checkpoint", req);
  }

  /** Starts (or finds) a pre-copy operation. */
  preCopy(req: PreCopyRequestMsg): Promise<OperationMsg> {
    return this.#unary("PreCopy", req);
  }

  /** Reads an operation. */
  getOperation(operationId: string): Promise<OperationMsg> {
    return this.#unary("GetOperation", { operationId });
  }

  /** Follows an operation until it is final; yields every state. */
  async *watchOperation(
    operationId: string,
    opts: { signal?: AbortSignal } = {},
  ): AsyncGenerator<OperationMsg> {
    // deno-lint-ignore no-explicit-any
    const call = (this.client as any).WatchOperation({ operationId }) as grpc.ClientReadableStream<
      OperationMsg
    >;
    const onAbort = () => call.cancel();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for await (const m of call) yield m as OperationMsg;
    } catch (err) {
      const e = err as grpc.ServiceError;
      throw Object.assign(
        new Error(`Agent ${this.address} WatchOperation failed: ${e.details || e.message}`),
        { code: e.code },
      );
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
      call.cancel();
    }
  }

  /** Starts pre-pulling a checkpoint image on the node. */
  prepareRestore(req: PrepareRestoreRequestMsg): Promise<OperationMsg> {
    return this.#unary("PrepareRestore", req);
  }

  /** Starts restoring a stored checkpoint into a new container (Docker hosts). */
  restoreContainer(req: RestoreContainerRequestMsg): Promise<OperationMsg> {
    return this.#unary("RestoreContainer", req);
  }

  /**
   * Removes node-local files of a finished operation; with `deleteStored`,
   * also its archive and metadata when its class's store lives on the node.
   */
  deleteCheckpoint(
    operationId: string,
    opts: { deleteStored?: boolean } = {},
  ): Promise<{ bytesFreed: number }> {
    return this.#unary("DeleteCheckpoint", { operationId, deleteStored: !!opts.deleteStored });
  }

  /** Health of the agent. */
  health(): Promise<HealthResponseMsg> {
    return this.#unary("Health", {});
  }

  /** The log kept with an operation (the runtime's CRIU log of a failed checkpoint). */
  getOperationLog(operationId: string): Promise<OperationLogMsg> {
    return this.#unary("GetOperationLog", { operationId });
  }

  /** Freezes every container of a pod and arms the agent's thaw deadline. */
  freezePod(req: FreezePodRequestMsg): Promise<FreezeStateMsg> {
    return this.#unary("FreezePod", req);
  }

  /** Renews, confirms, kills, thaws or reads a freeze. */
  controlFreeze(req: ControlFreezeRequestMsg): Promise<FreezeStateMsg> {
    return this.#unary("ControlFreeze", req);
  }

  /** When the running containers of a pod on the node started (the runtime's record). */
  containerStarts(
    namespace: string,
    pod: string,
  ): Promise<{ containers: { name: string; id: string; startedAtMs: number }[] }> {
    return this.#unary("ContainerStarts", { namespace, pod });
  }

  /** Closes the channel. */
  close(): void {
    this.client.close();
  }
}

/** The controllers' view of a freeze state message. */
export function toFreezeStatus(m: FreezeStateMsg): FreezeStatus {
  return {
    key: m.key,
    state: m.state as FreezeStatus["state"],
    frozenAtMs: Number(m.frozenAtMs) || undefined,
    deadlineMs: Number(m.deadlineMs) || undefined,
    message: m.message || undefined,
  };
}

/** Options for {@linkcode GrpcAgentConnector}. */
export interface GrpcAgentConnectorOptions extends AgentClientOptions, ResolveAgentOptions {
  /**
   * The agent pods: a cache kept by a watch (the controller's), or a client
   * that lists them at each lookup (CoreV1Api, for one-shot tools). May be
   * omitted when every node has an override.
   */
  kube?: PodLister | AgentPodCache;
}

/** The controllers' {@linkcode AgentConnector} over gRPC + mutual TLS. */
export class GrpcAgentConnector implements AgentConnector {
  readonly #clients = new Map<string, AgentClient>();

  /** Creates the connector. */
  constructor(private readonly opts: GrpcAgentConnectorOptions) {}

  /** The raw client of a node's agent (connections are cached per address). */
  async clientFor(nodeName: string): Promise<AgentClient> {
    const address = await resolveAgent(this.opts.kube, nodeName, this.opts);
    // A server name with "{node}" makes each agent prove it serves the node we
    // meant to reach (its certificate names that node).
    const sec = this.opts.security;
    const security = sec.mode === "mtls" && sec.serverName?.includes("{node}")
      ? { ...sec, serverName: agentServerName(sec.serverName, nodeName) }
      : sec;
    const key = `${nodeName}@${address}`;
    let c = this.#clients.get(key);
    if (!c) {
      c = await AgentClient.connect(address, { ...this.opts, security });
      this.#clients.set(key, c);
    }
    return c;
  }

  async forNode(nodeName: string): Promise<NodeAgent> {
    const c = await this.clientFor(nodeName);
    return {
      checkpoint: async (req: CheckpointRequest) =>
        toOperationStatus(
          await c.checkpoint({
            operationId: req.operationId,
            checkpointId: req.checkpointId ?? "",
            namespace: req.namespace,
            pod: req.pod,
            container: req.container,
            storageClass: { name: req.storageClassName },
            leaveRunning: req.leaveRunning,
            podJson: req.podJson,
            freezeKey: req.freezeKey ?? "",
            preCopyOperationId: req.preCopyOperationId ?? "",
          }),
        ),
      preCopy: async (req: PreCopyRequest) =>
        toOperationStatus(
          await c.preCopy({
            operationId: req.operationId,
            namespace: req.namespace,
            pod: req.pod,
            container: req.container,
            storageClass: { name: req.storageClassName },
            previousOperationId: req.previousOperationId ?? "",
            maxRounds: req.maxRounds,
          }),
        ),
      containerStarts: async (namespace, pod) =>
        (await c.containerStarts(namespace, pod)).containers.map((x) => ({
          name: x.name,
          startedAtMs: Number(x.startedAtMs),
        })),
      freezePod: async (req) =>
        toFreezeStatus(
          await c.freezePod({
            key: req.key,
            namespace: req.namespace,
            pod: req.pod,
            deadlineSeconds: req.deadlineSeconds,
          }),
        ),
      controlFreeze: async (req) =>
        toFreezeStatus(
          await c.controlFreeze({
            key: req.key,
            namespace: req.namespace,
            pod: req.pod,
            action: req.action,
            deadlineSeconds: req.deadlineSeconds ?? 0,
          }),
        ),
      getOperation: async (id: string) => {
        try {
          return toOperationStatus(await c.getOperation(id));
        } catch (err) {
          if ((err as { code?: number }).code === grpc.status.NOT_FOUND) {
            throw new Error(`operation "${id}" not found on node "${nodeName}"`);
          }
          throw err;
        }
      },
      prepareRestore: async (req) =>
        toOperationStatus(
          await c.prepareRestore({
            operationId: req.operationId,
            image: req.image,
            insecure: req.insecure ?? false,
            caBundle: req.caBundle ?? "",
            registryCredentials: req.credentials ? { ...req.credentials } : {},
            storageClassName: req.storageClassName ?? "",
          }),
        ),
      deleteCheckpoint: async (id, opts) => {
        try {
          return await c.deleteCheckpoint(id, opts);
        } catch (err) {
          if ((err as { code?: number }).code === grpc.status.NOT_FOUND) {
            throw new Error(`operation "${id}" not found on node "${nodeName}"`);
          }
          throw err;
        }
      },
      health: async () => {
        const h = await c.health();
        return {
          runtime: h.runtime,
          criuVersion: h.criuVersion || undefined,
          architecture: h.architecture || undefined,
          kernelVersion: h.kernelVersion || undefined,
        };
      },
    };
  }

  close(): void {
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
  }
}
