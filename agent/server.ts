/**
 * The agent's gRPC server: mutual TLS with a client identity allow-list, the
 * `lpm.agent.v1.Agent` service, and operations that run in the background and
 * persist in the state dir.
 * @module
 */
import * as grpc from "@grpc/grpc-js";
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
  type StorageClassRefMsg,
} from "../contract/proto.ts";
import {
  isFinal,
  type Operation,
  OperationConflictError,
  type OperationKind,
  type OperationPatch,
  OperationStore,
} from "./operations.ts";
import {
  type CheckpointJob,
  type ImagePublisher,
  type ResolvedClass,
  runCheckpoint,
  type VolumeCarrier,
} from "./pipeline.ts";
import type { FreezeAction, Freezes } from "./freezes.ts";
import { type PreCopyDeps, preCopyDumpDir, preCopyRoundProblem, runPreCopy } from "./pre_copy.ts";
import type { RuntimeDriver } from "./runtime/driver.ts";
import { criuVersion } from "./runtime/criu_version.ts";
import { type CriuLog, criuLogOf } from "./runtime/criu_log.ts";
import { Logger } from "../base/log.ts";
import { sha256Hex } from "../base/sha256.ts";
import { decryptStream } from "../storage/mod.ts";
import { hostArchitecture } from "../oci/platform.ts";
import {
  createServerTls,
  describeIdentity,
  identityOf,
  isAllowed,
  type TlsFiles,
} from "../contract/tls.ts";

/** Agent version reported by Health and recorded in metadata. */
export const AGENT_VERSION = "0.1.0";

/** Security of the listener. */
export type AgentSecurity =
  | {
    /** Mutual TLS (the only production mode). */
    mode: "mtls";
    /** Serving certificate, key and the CA that signs client certificates. */
    files: TlsFiles;
    /** Allowed client identities: a CN, or a URI SAN such as `spiffe://lpm/controller`. */
    allowedClients: string[];
    /** Re-read the files when they change (Secret rotation). Default true. */
    watch?: boolean;
  }
  | {
    /** Plain HTTP/2: development only (`--insecure-dev`). */
    mode: "insecure-dev";
  };

/** Resolves a request's storage class into a store and registry. */
export type ClassResolver = (ref: StorageClassRefMsg) => Promise<ResolvedClass>;

/** Options for {@linkcode startAgentServer}. */
export interface AgentServerOptions {
  /** Node this agent serves. */
  nodeName: string;
  /** `host:port` to listen on (port 0 picks one). */
  listen: string;
  /** Listener security. */
  security: AgentSecurity;
  /** State dir (operations, work files). */
  stateDir: string;
  /** Runtime driver. */
  driver: RuntimeDriver;
  /** Storage class resolver. */
  resolveClass: ClassResolver;
  /** Image publisher for checkpoint images. */
  images?: ImagePublisher;
  /** Carries emptyDir volumes with checkpoints (kubelet nodes). */
  volumes?: VolumeCarrier;
  /** Frozen pods (containerd nodes): FreezePod, ControlFreeze and frozen final checkpoints. */
  freezes?: Freezes;
  /** When a pod's running containers started (the node's CRI). */
  containerStarts?: (
    namespace: string,
    pod: string,
  ) => Promise<{ name: string; id: string; startedAtMs: number }[]>;
  /** Reads CRIU stats from an archive. */
  readStats?: (archivePath: string) => Promise<Record<string, number> | undefined>;
  /**
   * Pre-copy (containerd nodes): the node's runc and its state root, and
   * the parent image's push. Absent: PreCopy is refused as UNIMPLEMENTED.
   */
  preCopy?: Pick<PreCopyDeps, "runc" | "runcRoot" | "pushParent"> & {
    /** The runtime id of a pod's running container. */
    containerId: (namespace: string, pod: string, container: string) => Promise<string>;
  };
  /** Makes an image available on this node (PrepareRestore). */
  prepareImage?: (
    req: PrepareRestoreRequestMsg,
    signal: AbortSignal,
  ) => Promise<{ image: string }>;
  /** Logger (default: JSON lines on stderr with component "lpm-agent"). */
  log?: Logger;
}

/** A running agent server. */
export interface AgentServer {
  /** Bound port. */
  port: number;
  /** The operations. */
  operations: OperationStore;
  /** Re-reads the TLS files now (also done on file change and SIGHUP in main). */
  reloadTls(): Promise<void>;
  /** Stops accepting calls, cancels running work, waits for state writes. */
  close(opts?: { graceMs?: number }): Promise<void>;
}

function toMsg(op: Operation): OperationMsg {
  return {
    id: op.id,
    kind: op.kind,
    phase: op.phase,
    step: op.step,
    bytesDone: op.bytesDone,
    bytesTotal: op.bytesTotal,
    message: op.message,
    result: op.result
      ? {
        archive: op.result.archive,
        image: { tag: "", ...op.result.image },
        criuStats: op.result.criuStats ?? {},
        runtime: {
          name: op.result.runtime?.name ?? "",
          version: op.result.runtime?.version ?? "",
          criuVersion: op.result.runtime?.criuVersion ?? "",
        },
        checkpointTime: op.result.checkpointTime ?? "",
        volumes: op.result.volumes ?? null,
      }
      : null,
    restore: op.restore
      ? { containerId: op.restore.containerId ?? "", image: op.restore.image ?? "" }
      : null,
    preCopy: op.preCopy
      ? {
        image: { ...op.preCopy.image, tag: "" },
        round: op.preCopy.round,
        layers: op.preCopy.layers,
      }
      : null,
    created: op.created,
    updated: op.updated,
  };
}

function fingerprint(value: unknown): string {
  return sha256Hex(JSON.stringify(value));
}

function grpcError(code: grpc.status, message: string): grpc.ServiceError {
  return Object.assign(new Error(message), {
    code,
    details: message,
    metadata: new grpc.Metadata(),
  });
}

/** What the server's steps and handlers share. */
interface AgentContext {
  opts: AgentServerOptions;
  log: Logger;
  operations: OperationStore;
  /** Cancels the background work when the server closes. */
  work: AbortController;
  /** Background operations still running. */
  running: Set<Promise<void>>;
  /** The node's CRIU version, asked once. */
  criu?: Promise<string | undefined>;
}

type ServerTls = Awaited<ReturnType<typeof createServerTls>>;

/** Starts the agent's gRPC server. */
export async function startAgentServer(opts: AgentServerOptions): Promise<AgentServer> {
  const log = opts.log ?? new Logger({ component: "lpm-agent" });
  const operations = await OperationStore.open(opts.stateDir, {
    onRecovered: (op) =>
      log.warn("operation failed by restart", { operation: op.id, message: op.message }),
  });
  const ctx: AgentContext = {
    opts,
    log,
    operations,
    work: new AbortController(),
    running: new Set<Promise<void>>(),
  };
  const { tls, credentials } = await listenerCredentials(ctx);
  const server = new grpc.Server({ "grpc.max_receive_message_length": 16 << 20 });
  server.addService(agentService().service, handlers(ctx));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      opts.listen,
      credentials,
      (err, p) =>
        err ? reject(new Error(`Cannot listen on "${opts.listen}": ${err.message}`)) : resolve(p),
    )
  );
  log.info("agent listening", {
    listen: opts.listen,
    port,
    node: opts.nodeName,
    runtime: opts.driver.name,
    security: opts.security.mode,
  });

  return {
    port,
    operations,
    reloadTls: async () => {
      await tls?.reload();
    },
    close: (copts) => closeServer(ctx, server, copts),
  };
}

/** The listener's credentials: mutual TLS watched for rotation, or the loud insecure mode. */
async function listenerCredentials(
  { opts, log, work }: AgentContext,
): Promise<{ tls?: ServerTls; credentials: grpc.ServerCredentials }> {
  const security = opts.security;
  if (security.mode !== "mtls") {
    log.warn(
      "!!! INSECURE DEVELOPMENT MODE: the agent serves WITHOUT TLS and WITHOUT client " +
        "authentication; anyone who reaches this port can checkpoint containers. Never use " +
        "--insecure-dev outside a development machine. !!!",
      { listen: opts.listen },
    );
    return { credentials: grpc.ServerCredentials.createInsecure() };
  }
  if (security.allowedClients.length === 0) {
    throw new Error(
      "Cannot start the agent: mutual TLS needs at least one allowed client identity",
    );
  }
  const tls = await createServerTls(security.files);
  if (security.watch !== false) {
    tls.watch({
      signal: work.signal,
      onReload: (err) =>
        err
          ? log.error("TLS reload failed; keeping the old certificates", {
            error: err.message,
          })
          : log.info("TLS certificates reloaded"),
    });
  }
  return { tls, credentials: tls.credentials };
}

/** Stops accepting calls (forcibly after `graceMs`), cancels running work, waits for state writes. */
async function closeServer(
  { opts, operations, work, running }: AgentContext,
  server: grpc.Server,
  { graceMs = 5000 }: { graceMs?: number } = {},
): Promise<void> {
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(t);
      resolve();
    });
  });
  work.abort(new Error("Agent shutting down"));
  await Promise.allSettled([...running]);
  await operations.flush();
  opts.driver.close?.();
}

/** The service's handlers: each checks the caller, then runs its step. */
function handlers(ctx: AgentContext): grpc.UntypedServiceImplementation {
  return {
    Checkpoint: unary<CheckpointRequestMsg>(ctx, "Checkpoint", (req) => checkpoint(ctx, req)),
    GetOperation: unary<{ operationId: string }>(ctx, "GetOperation", (req) => {
      const found = ctx.operations.get(req.operationId);
      if (!found) {
        return Promise.reject(
          grpcError(grpc.status.NOT_FOUND, `Operation "${req.operationId}" not found`),
        );
      }
      return Promise.resolve(toMsg(found));
    }),
    WatchOperation: (call: grpc.ServerWritableStream<{ operationId: string }, OperationMsg>) =>
      watchOperation(ctx, call),
    PrepareRestore: unary<PrepareRestoreRequestMsg>(
      ctx,
      "PrepareRestore",
      (req) => prepareRestore(ctx, req),
    ),
    RestoreContainer: unary<RestoreContainerRequestMsg>(
      ctx,
      "RestoreContainer",
      (req) => restoreContainer(ctx, req),
    ),
    DeleteCheckpoint: unary<{ operationId: string; deleteStored?: boolean }>(
      ctx,
      "DeleteCheckpoint",
      (req) => deleteCheckpoint(ctx, req),
    ),
    FreezePod: unary<FreezePodRequestMsg>(ctx, "FreezePod", (req) => freezePod(ctx, req)),
    ControlFreeze: unary<ControlFreezeRequestMsg>(
      ctx,
      "ControlFreeze",
      (req) => controlFreeze(ctx, req),
    ),
    ContainerStarts: unary<{ namespace: string; pod: string }>(
      ctx,
      "ContainerStarts",
      (req) => containerStarts(ctx, req),
    ),
    PreCopy: unary<PreCopyRequestMsg>(ctx, "PreCopy", (req) => preCopy(ctx, req)),
    Health: unary<Record<string, never>>(ctx, "Health", () => health(ctx)),
    GetOperationLog: unary<{ operationId: string }>(
      ctx,
      "GetOperationLog",
      (req) => getOperationLog(ctx, req),
    ),
  };
}

/** The refusal for a caller that is not allowed, or undefined when it is. */
function refusal(
  { opts, log }: AgentContext,
  call: { getPeer(): string },
): grpc.ServiceError | undefined {
  const security = opts.security;
  if (security.mode !== "mtls") return undefined;
  const auth = (call as { getAuthContext?: () => { sslPeerCertificate?: unknown } | null })
    .getAuthContext?.();
  const identity = identityOf(
    auth?.sslPeerCertificate as Parameters<typeof identityOf>[0],
  );
  if (isAllowed(identity, security.allowedClients)) return undefined;
  log.warn("client refused", { peer: call.getPeer(), identity: describeIdentity(identity) });
  return grpcError(
    grpc.status.PERMISSION_DENIED,
    `Client ${describeIdentity(identity)} is not allowed to call this agent ` +
      `(allowed: ${security.allowedClients.map((a) => `"${a}"`).join(", ")})`,
  );
}

// deno-lint-ignore no-explicit-any
type Unary<Req> = (call: grpc.ServerUnaryCall<Req, any>, cb: grpc.sendUnaryData<any>) => void;

/** A unary handler: refuses a caller that is not allowed, maps errors to gRPC codes. */
function unary<Req>(
  ctx: AgentContext,
  name: string,
  fn: (req: Req) => Promise<unknown>,
): Unary<Req> {
  return (call, cb) => {
    const refused = refusal(ctx, call);
    if (refused) return cb(refused);
    fn(call.request).then((v) => cb(null, v), (err) => {
      const e = err as Error & { code?: number };
      if (!(typeof e.code === "number")) ctx.log.error(`${name} failed`, { error: e.message });
      cb(
        typeof e.code === "number" ? e as grpc.ServiceError : grpcError(
          err instanceof OperationConflictError
            ? grpc.status.ALREADY_EXISTS
            : /invalid|required|must/i.test(e.message)
            ? grpc.status.INVALID_ARGUMENT
            : grpc.status.INTERNAL,
          e.message,
        ),
      );
    });
  };
}

function required(fields: Record<string, string | undefined>): void {
  for (const [k, v] of Object.entries(fields)) {
    if (!v) throw grpcError(grpc.status.INVALID_ARGUMENT, `Field "${k}" is required`);
  }
}

/** Runs an operation's work in the background; a failure marks it Failed (with its CRIU log kept). */
function start(
  ctx: AgentContext,
  id: string,
  kind: OperationKind,
  body: (signal: AbortSignal) => Promise<void>,
): void {
  const { log, operations, running } = ctx;
  const p = (async () => {
    try {
      await body(ctx.work.signal);
    } catch (err) {
      const message = (err as Error).message;
      log.error("operation failed", { operation: id, kind, error: message });
      const criuLog = criuLogOf(err);
      if (criuLog) {
        // The runtime overwrites its log on the next dump: keep this one with the operation.
        await keepLog(ctx, id, criuLog).catch((e) =>
          log.warn("cannot keep the CRIU log", { operation: id, error: e.message })
        );
      }
      await operations.update(id, { phase: "Failed", message }).catch(() => {});
    }
  })();
  running.add(p);
  p.finally(() => running.delete(p));
}

// Kept logs: one JSON file per operation (ids are safe file names), bounded by the reader.
function logPath(ctx: AgentContext, id: string): string {
  return `${ctx.opts.stateDir}/logs/${id}.json`;
}

async function keepLog(ctx: AgentContext, id: string, l: CriuLog): Promise<void> {
  await Deno.mkdir(`${ctx.opts.stateDir}/logs`, { recursive: true, mode: 0o700 });
  const tmp = `${logPath(ctx, id)}.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify(l), { mode: 0o600 });
  await Deno.rename(tmp, logPath(ctx, id));
}

async function checkpoint(ctx: AgentContext, req: CheckpointRequestMsg): Promise<OperationMsg> {
  const { log, operations } = ctx;
  required({
    operation_id: req.operationId,
    namespace: req.namespace,
    pod: req.pod,
    container: req.container,
    "storage_class.name": req.storageClass?.name,
  });
  const fp = fingerprint({
    ns: req.namespace,
    pod: req.pod,
    container: req.container,
    cls: req.storageClass?.name,
    leaveRunning: !!req.leaveRunning,
    ref: req.containerRef ?? "",
    freeze: req.freezeKey ?? "",
    preCopy: req.preCopyOperationId ?? "",
  });
  // A final checkpoint is taken only of a pod this agent holds frozen.
  const driver = req.freezeKey ? frozenDriver(ctx, req, req.freezeKey) : ctx.opts.driver;
  // A retry of a checkpoint finds it; its round may be released by now.
  const retry = operations.get(req.operationId) !== undefined;
  const preCopied = req.preCopyOperationId && !retry ? preCopyOf(ctx, req) : undefined;
  const { op, created } = await operations.begin(req.operationId, "checkpoint", fp);
  if (!created) return toMsg(op);
  log.info("checkpoint started", {
    operation: op.id,
    pod: `${req.namespace}/${req.pod}`,
    container: req.container,
  });
  start(
    ctx,
    op.id,
    "checkpoint",
    (signal) => runCheckpointOperation(ctx, req, op.id, driver, signal, preCopied),
  );
  return toMsg(operations.get(op.id)!);
}

/**
 * A pre-copy round a request names (`field`): a Succeeded PreCopy operation
 * of the same container whose dump is still on this node; refused by name
 * otherwise.
 */
function preCopyRound(
  { operations }: AgentContext,
  field: string,
  id: string,
  subject: string,
): Operation & { preCopy: NonNullable<Operation["preCopy"]> } {
  const op = operations.get(id);
  const refuse = (why: string) =>
    grpcError(grpc.status.FAILED_PRECONDITION, `Field "${field}" "${id}": ${why}`);
  if (!op || op.kind !== "preCopy") throw refuse("no pre-copy operation with this id on this node");
  if (op.phase !== "Succeeded" || !op.preCopy) throw refuse(`the pre-copy is ${op.phase}`);
  if (op.subject !== subject) throw refuse(`it pre-copied "${op.subject}", not "${subject}"`);
  if (!op.localPaths?.length) throw refuse("its dump is no longer on this node (used or deleted)");
  return op as Operation & { preCopy: NonNullable<Operation["preCopy"]> };
}

/** The last pre-copy round a checkpoint names, as the pipeline takes it. */
function preCopyOf(
  ctx: AgentContext,
  req: CheckpointRequestMsg,
): NonNullable<CheckpointJob["preCopy"]> & { operationId: string } {
  const id = req.preCopyOperationId!;
  const subject = `${req.namespace}/${req.pod}/${req.container}`;
  const op = preCopyRound(ctx, "pre_copy_operation_id", id, subject);
  return {
    operationId: id,
    parentDir: preCopyDumpDir(ctx.operations.workDir(id)),
    passThrough: (op.maxRounds ?? op.preCopy.round.round) - op.preCopy.round.round,
    layers: op.preCopy.layers,
    image: op.preCopy.image.reference,
  };
}

/** The driver for a final checkpoint: refuses a pod not held frozen, checks it stayed paused. */
function frozenDriver(
  { opts }: AgentContext,
  req: CheckpointRequestMsg,
  freezeKey: string,
): RuntimeDriver {
  if (!opts.freezes) {
    throw grpcError(
      grpc.status.FAILED_PRECONDITION,
      "This agent cannot freeze pods (no containerd endpoint: --runtime-endpoint)",
    );
  }
  const freezes = opts.freezes;
  const held = freezes.held(freezeKey, req.namespace, req.pod, req.container);
  if (!held.id) throw grpcError(grpc.status.FAILED_PRECONDITION, held.refusal!);
  const id = held.id;
  return {
    ...opts.driver,
    name: opts.driver.name,
    checkpoint: async (ref, o) => {
      const out = await opts.driver.checkpoint(ref, o);
      // The runtime dumps a task it knows as paused without resuming it; say so if not.
      if (!(await freezes.isPaused(id))) {
        if (out.ownsArchive) await Deno.remove(out.archivePath).catch(() => {});
        throw new Error(
          `Container "${ref.container}" ran again after its dump: the checkpoint is not ` +
            "its final state (was the pod thawed?)",
        );
      }
      return out;
    },
  };
}

/** The background part of Checkpoint: the pipeline, then the operation's result. */
async function runCheckpointOperation(
  { opts, log, operations }: AgentContext,
  req: CheckpointRequestMsg,
  id: string,
  driver: RuntimeDriver,
  signal: AbortSignal,
  preCopied?: ReturnType<typeof preCopyOf>,
): Promise<void> {
  try {
    await runCheckpointPipeline({ opts, log, operations }, req, id, driver, signal, preCopied);
  } finally {
    // The round served this final checkpoint (or its migration failed): the node's copy goes.
    if (preCopied) await releaseRound({ operations } as AgentContext, preCopied.operationId);
  }
}

async function runCheckpointPipeline(
  { opts, log, operations }: Pick<AgentContext, "opts" | "log" | "operations">,
  req: CheckpointRequestMsg,
  id: string,
  driver: RuntimeDriver,
  signal: AbortSignal,
  preCopied?: ReturnType<typeof preCopyOf>,
): Promise<void> {
  const { result, timings } = await runCheckpoint({
    operationId: req.operationId,
    checkpointId: req.checkpointId || undefined,
    namespace: req.namespace,
    pod: req.pod,
    container: req.container,
    containerRef: req.containerRef || undefined,
    leaveRunning: req.leaveRunning,
    podJson: req.podJson || undefined,
    timeoutSeconds: req.timeoutSeconds || undefined,
    keepArchiveOnFailure: req.keepArchiveOnFailure,
    preCopy: preCopied,
  }, {
    driver,
    resolveClass: () => opts.resolveClass(req.storageClass!),
    images: opts.images,
    volumes: opts.volumes,
    readStats: opts.readStats,
    workDir: operations.workDir(id),
    keptDir: `${opts.stateDir}/kept`,
    report: (patch: OperationPatch) => operations.update(id, patch),
    signal,
    agent: { nodeName: opts.nodeName, version: AGENT_VERSION },
    log: (msg, fields) => log.info(msg, { operation: id, ...fields }),
  });
  await operations.update(id, {
    phase: "Succeeded",
    step: "done",
    result,
    message: `Stored ${timings.archiveBytes} bytes; checkpoint ${
      Math.round(timings.checkpointMs)
    } ms, publish ${Math.round(timings.publishMs)} ms`,
  });
  log.info("checkpoint succeeded", { operation: id, ...timings });
}

function watchOperation(
  ctx: AgentContext,
  call: grpc.ServerWritableStream<{ operationId: string }, OperationMsg>,
) {
  const refused = refusal(ctx, call);
  if (refused) return call.destroy(refused);
  const id = call.request.operationId;
  const op = ctx.operations.get(id);
  if (!op) return call.destroy(grpcError(grpc.status.NOT_FOUND, `Operation "${id}" not found`));
  call.write(toMsg(op));
  if (isFinal(op.phase)) return call.end();
  const stop = ctx.operations.watch(id, (o) => {
    call.write(toMsg(o));
    if (isFinal(o.phase)) {
      stop();
      call.end();
    }
  });
  call.on("cancelled", stop);
  call.on("close", stop);
}

async function prepareRestore(
  ctx: AgentContext,
  req: PrepareRestoreRequestMsg,
): Promise<OperationMsg> {
  const { opts, operations } = ctx;
  required({ operation_id: req.operationId, image: req.image });
  if (!opts.prepareImage) {
    throw grpcError(grpc.status.UNIMPLEMENTED, "This agent cannot prepare restores");
  }
  const fp = fingerprint({ image: req.image });
  const { op, created } = await operations.begin(req.operationId, "prepareRestore", fp);
  if (created) {
    start(ctx, op.id, "prepareRestore", async (signal) => {
      await operations.update(op.id, { phase: "Running", step: "pulling image" });
      const r = await opts.prepareImage!(req, signal);
      await operations.update(op.id, { phase: "Succeeded", step: "done", restore: r });
    });
  }
  return toMsg(operations.get(op.id)!);
}

async function preCopy(ctx: AgentContext, req: PreCopyRequestMsg): Promise<OperationMsg> {
  const { opts, operations, log } = ctx;
  required({
    operation_id: req.operationId,
    namespace: req.namespace,
    pod: req.pod,
    container: req.container,
    "storage_class.name": req.storageClass?.name,
  });
  const pc = opts.preCopy;
  if (!pc) {
    throw grpcError(
      grpc.status.UNIMPLEMENTED,
      "This agent cannot pre-copy (it needs the node's containerd: --runtime-endpoint)",
    );
  }
  const subject = `${req.namespace}/${req.pod}/${req.container}`;
  const prevId = req.previousOperationId || undefined;
  const maxRounds = req.maxRounds ?? 0;
  const fp = fingerprint({ subject, prev: prevId ?? "", cls: req.storageClass?.name, maxRounds });
  // A retry finds its round (whose previous round may be released by now).
  if (operations.get(req.operationId)) {
    return toMsg((await operations.begin(req.operationId, "preCopy", fp)).op);
  }
  const prev = prevId ? preCopyRound(ctx, "previous_operation_id", prevId, subject) : undefined;
  if (prev && prev.maxRounds !== maxRounds) {
    throw grpcError(
      grpc.status.INVALID_ARGUMENT,
      `Field "max_rounds" is ${maxRounds} but round ${prev.preCopy.round.round} ("${prev.id}") ` +
        `was taken with ${prev.maxRounds}: a chain keeps one limit`,
    );
  }
  const problem = preCopyRoundProblem((prev?.preCopy.round.round ?? 0) + 1, maxRounds);
  if (problem) throw grpcError(grpc.status.INVALID_ARGUMENT, problem);
  const job = {
    operationId: req.operationId,
    namespace: req.namespace,
    pod: req.pod,
    container: req.container,
    maxRounds,
    previous: prev
      ? {
        round: prev.preCopy.round.round,
        dumpDir: preCopyDumpDir(operations.workDir(prev.id)),
        layers: prev.preCopy.layers,
      }
      : undefined,
  };
  const { op, created } = await operations.begin(req.operationId, "preCopy", fp);
  if (!created) return toMsg(op);
  log.info("pre-copy round started", { operation: op.id, pod: `${req.namespace}/${req.pod}` });
  start(ctx, op.id, "preCopy", async (signal) => {
    const workDir = operations.workDir(op.id);
    // The dump stays on the node for the next round or the final checkpoint (which remove it).
    await operations.update(op.id, { localPaths: [workDir], subject, maxRounds });
    try {
      const result = await runPreCopy(job, {
        runc: pc.runc,
        runcRoot: pc.runcRoot,
        pushParent: pc.pushParent,
        containerId: () => pc.containerId(req.namespace, req.pod, req.container),
        resolveClass: () => opts.resolveClass(req.storageClass!),
        workDir,
        report: (patch) => operations.update(op.id, patch),
        signal,
        log: (msg, fields) => log.info(msg, { operation: op.id, ...fields }),
      });
      const r = result.round;
      // The previous round's dump was this round's comparison base only (released before
      // this round says it succeeded: whoever reads that finds the previous one released).
      if (prev) await releaseRound(ctx, prev.id);
      await operations.update(op.id, {
        phase: "Succeeded",
        step: "done",
        preCopy: result,
        message: `Round ${r.round}: ${r.pages} pages, ${r.dirtyPages} changed since the round ` +
          `before (the dump took ${r.dumpMs} ms); image ${result.image.reference}`,
      });
    } catch (err) {
      await Deno.remove(workDir, { recursive: true }).catch(() => {});
      await operations.update(op.id, { localPaths: [] }).catch(() => {});
      throw err;
    }
  });
  return toMsg(operations.get(op.id)!);
}

/** Removes a used pre-copy round's dump from the node (its operation stays, for its result). */
async function releaseRound({ operations }: AgentContext, id: string): Promise<void> {
  await Deno.remove(operations.workDir(id), { recursive: true }).catch(() => {});
  await operations.clearLocalPaths(id);
}

async function restoreContainer(
  ctx: AgentContext,
  req: RestoreContainerRequestMsg,
): Promise<OperationMsg> {
  const { opts, operations } = ctx;
  required({
    operation_id: req.operationId,
    archive_key: req.archiveKey,
    name: req.name,
    "storage_class.name": req.storageClass?.name,
  });
  const driver = opts.driver;
  if (!driver.restore) {
    throw grpcError(
      grpc.status.FAILED_PRECONDITION,
      `The "${driver.name}" driver cannot restore containers; only Docker hosts restore ` +
        "through the agent (Kubernetes nodes restore from the checkpoint image)",
    );
  }
  const fp = fingerprint({ key: req.archiveKey, name: req.name });
  const { op, created } = await operations.begin(req.operationId, "restoreContainer", fp);
  if (created) {
    start(ctx, op.id, "restoreContainer", (signal) => restoreFromStore(ctx, req, op.id, signal));
  }
  return toMsg(operations.get(op.id)!);
}

/** The background part of RestoreContainer: download the archive, restore it, clean up. */
async function restoreFromStore(
  { opts, operations }: AgentContext,
  req: RestoreContainerRequestMsg,
  id: string,
  signal: AbortSignal,
): Promise<void> {
  await operations.update(id, { phase: "Running", step: "downloading archive" });
  const cls = await opts.resolveClass(req.storageClass!);
  const dir = operations.workDir(id);
  await Deno.mkdir(dir, { recursive: true });
  const path = `${dir}/checkpoint.tar`;
  try {
    const info = await cls.store.stat(req.archiveKey);
    if (!info) {
      throw new Error(
        `Checkpoint archive "${req.archiveKey}" does not exist in class "${cls.name}"`,
      );
    }
    await operations.update(id, { bytesTotal: info.size });
    const stored = await cls.store.get(req.archiveKey, { signal });
    // Stored encrypted (class spec.encryption): decrypted here, on the node that restores it.
    const encrypted = info.metadata?.["lpm-encryption"] !== undefined;
    if (encrypted && !cls.keys) {
      await stored.cancel();
      throw new Error(
        `Checkpoint archive "${req.archiveKey}" is encrypted and class "${cls.name}" has no ` +
          "spec.encryption to decrypt it",
      );
    }
    const body = encrypted
      ? stored.pipeThrough(decryptStream(cls.keys!, { what: `archive "${req.archiveKey}"` }))
      : stored;
    const file = await Deno.open(path, { write: true, create: true, truncate: true });
    let done = 0;
    await body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, c) {
          done += chunk.length;
          void operations.update(id, { bytesDone: done });
          c.enqueue(chunk);
        },
      }),
    ).pipeTo(file.writable);
    await operations.update(id, { step: "restoring" });
    const { containerId } = await opts.driver.restore!(path, { name: req.name, signal });
    await operations.update(id, {
      phase: "Succeeded",
      step: "done",
      restore: { containerId },
    });
  } finally {
    cls.store.close?.();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function deleteCheckpoint(
  ctx: AgentContext,
  req: { operationId: string; deleteStored?: boolean },
): Promise<{ bytesFreed: number }> {
  const { log, operations } = ctx;
  required({ operation_id: req.operationId });
  const op = operations.get(req.operationId);
  if (!op) throw grpcError(grpc.status.NOT_FOUND, `Operation "${req.operationId}" not found`);
  if (!isFinal(op.phase)) {
    throw grpcError(
      grpc.status.FAILED_PRECONDITION,
      `Operation "${op.id}" is still ${op.phase}; delete it when it has finished`,
    );
  }
  let freed = req.deleteStored ? await deleteNodeStored(ctx, op) : 0;
  for (const p of [...(op.localPaths ?? []), operations.workDir(op.id), logPath(ctx, op.id)]) {
    const st = await Deno.stat(p).catch(() => undefined);
    if (!st) continue;
    freed += st.isFile ? st.size : 0;
    await Deno.remove(p, { recursive: true }).catch(() => {});
  }
  await operations.remove(op.id);
  log.info("checkpoint deleted locally", { operation: op.id, bytesFreed: freed });
  return { bytesFreed: freed };
}

/** Providers whose store lives on the node: only its agent can delete what they hold. */
const NODE_STORE_PROVIDERS = ["local", "pvc"];

/**
 * Deletes the stored archive and metadata of checkpoint operation `op` when
 * its class's store is on this node; a bucket store's objects are the
 * controller's to delete. Returns the archive's size when it went.
 */
async function deleteNodeStored(ctx: AgentContext, op: Operation): Promise<number> {
  const archive = op.result?.archive;
  if (!archive?.key || !archive.storageClassName) return 0;
  const cls = await ctx.opts.resolveClass({ name: archive.storageClassName });
  try {
    if (!NODE_STORE_PROVIDERS.includes(cls.store.provider)) return 0;
    const had = await cls.store.stat(archive.key).then(() => true, () => false);
    // Archive first, metadata last: a deletion cut short still finds what it was.
    await cls.store.delete(archive.key);
    await cls.store.delete(archive.key.replace(/\.tar$/, ".checkpoint.json"));
    ctx.log.info("stored checkpoint deleted", { operation: op.id, key: archive.key });
    return had ? Number(archive.size) || 0 : 0;
  } finally {
    cls.store.close?.();
  }
}

/** The node's freezes, or UNIMPLEMENTED when this agent has none. */
function freezesOf({ opts }: AgentContext): Freezes {
  if (!opts.freezes) {
    throw grpcError(
      grpc.status.UNIMPLEMENTED,
      "This agent cannot freeze pods (no containerd endpoint: --runtime-endpoint)",
    );
  }
  return opts.freezes;
}

async function freezePod(ctx: AgentContext, req: FreezePodRequestMsg): Promise<FreezeStateMsg> {
  required({ key: req.key, namespace: req.namespace, pod: req.pod });
  const s = await freezesOf(ctx).freeze({
    key: req.key,
    namespace: req.namespace,
    pod: req.pod,
    deadlineSeconds: req.deadlineSeconds || 120,
  });
  ctx.log.info("pod frozen", { key: s.key, pod: `${s.namespace}/${s.pod}`, state: s.state });
  return s satisfies FreezeStateMsg;
}

async function controlFreeze(
  ctx: AgentContext,
  req: ControlFreezeRequestMsg,
): Promise<FreezeStateMsg> {
  required({ key: req.key, namespace: req.namespace, pod: req.pod, action: req.action });
  const freezes = freezesOf(ctx);
  const actions = ["STATUS", "EXTEND", "CONFIRM", "KILL", "THAW"];
  if (!actions.includes(req.action)) {
    throw grpcError(
      grpc.status.INVALID_ARGUMENT,
      `Field "action" is "${req.action}": want one of ${actions.join(", ")}`,
    );
  }
  const s = await freezes.control({
    key: req.key,
    namespace: req.namespace,
    pod: req.pod,
    action: req.action as FreezeAction,
    deadlineSeconds: req.deadlineSeconds || undefined,
  });
  if (req.action !== "STATUS" && req.action !== "EXTEND") {
    ctx.log.info(`freeze ${req.action}`, {
      key: s.key,
      pod: `${s.namespace}/${s.pod}`,
      state: s.state,
    });
  }
  return s satisfies FreezeStateMsg;
}

async function containerStarts(
  { opts }: AgentContext,
  req: { namespace: string; pod: string },
): Promise<{ containers: { name: string; id: string; startedAtMs: number }[] }> {
  required({ namespace: req.namespace, pod: req.pod });
  if (!opts.containerStarts) {
    throw grpcError(
      grpc.status.UNIMPLEMENTED,
      "This agent has no CRI endpoint (--runtime-endpoint)",
    );
  }
  return { containers: await opts.containerStarts(req.namespace, req.pod) };
}

async function health(ctx: AgentContext): Promise<HealthResponseMsg> {
  return {
    status: "SERVING",
    nodeName: ctx.opts.nodeName,
    version: AGENT_VERSION,
    runtime: ctx.opts.driver.name,
    runningOperations: ctx.operations.running(),
    criuVersion: (await (ctx.criu ??= criuVersion())) ?? "",
    architecture: hostArchitecture(),
    kernelVersion: Deno.osRelease(),
  } satisfies HealthResponseMsg;
}

async function getOperationLog(
  ctx: AgentContext,
  req: { operationId: string },
): Promise<OperationLogMsg> {
  required({ operation_id: req.operationId });
  if (!ctx.operations.get(req.operationId)) {
    throw grpcError(grpc.status.NOT_FOUND, `Operation "${req.operationId}" not found`);
  }
  let kept: CriuLog;
  try {
    kept = JSON.parse(await Deno.readTextFile(logPath(ctx, req.operationId))) as CriuLog;
  } catch {
    throw grpcError(
      grpc.status.NOT_FOUND,
      `Operation "${req.operationId}" has no kept log (one is kept when CRIU fails)`,
    );
  }
  return {
    operationId: req.operationId,
    sourcePath: kept.path,
    content: kept.content,
    truncated: kept.truncated,
  } satisfies OperationLogMsg;
}
