/**
 * Loads `agent.proto` once for the server and the client, with the message
 * shapes both sides use (camelCase fields, 64-bit integers as numbers).
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

/** Fully qualified service name. */
export const SERVICE_NAME = "lpm.agent.v1.Agent";

const PROTO_PATH = new URL("./agent.proto", import.meta.url).pathname;

let cached: grpc.ServiceClientConstructor | undefined;

/** The generated service constructor (its `.service` is the definition). */
export function agentService(): grpc.ServiceClientConstructor {
  if (cached) return cached;
  const def = protoLoader.loadSync(PROTO_PATH, {
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    lpm: { agent: { v1: { Agent: grpc.ServiceClientConstructor } } };
  };
  cached = pkg.lpm.agent.v1.Agent;
  return cached;
}

/** `StorageClassRef` message. */
export interface StorageClassRefMsg {
  name: string;
  specJson?: string;
  credentials?: Record<string, string>;
  registryCredentials?: Record<string, string>;
}

/** `CheckpointRequest` message. */
export interface CheckpointRequestMsg {
  operationId: string;
  namespace: string;
  pod: string;
  container: string;
  storageClass?: StorageClassRefMsg | null;
  leaveRunning?: boolean;
  podJson?: string;
  timeoutSeconds?: number;
  keepArchiveOnFailure?: boolean;
  containerRef?: string;
  checkpointId?: string;
  freezeKey?: string;
  preCopyOperationId?: string;
}

/** `PreCopyRequest` message. */
export interface PreCopyRequestMsg {
  operationId: string;
  namespace: string;
  pod: string;
  container: string;
  storageClass?: StorageClassRefMsg | null;
  previousOperationId?: string;
  maxRounds: number;
}

/** `PreCopyResult` message. */
export interface PreCopyResultMsg {
  image?: { reference: string; digest: string; tag?: string } | null;
  round?:
    | { round: number; pages: number; dirtyPages: number; dirtyBytes: number; dumpMs: number }
    | null;
  layers: { digest: string; size: number }[];
}

/** `FreezePodRequest` message. */
export interface FreezePodRequestMsg {
  key: string;
  namespace: string;
  pod: string;
  deadlineSeconds: number;
}

/** `ControlFreezeRequest` message. */
export interface ControlFreezeRequestMsg {
  key: string;
  namespace: string;
  pod: string;
  action: string;
  deadlineSeconds?: number;
}

/** `FreezeState` message. */
export interface FreezeStateMsg {
  key: string;
  namespace: string;
  pod: string;
  state: string;
  frozenAtMs: number;
  deadlineMs: number;
  message: string;
}

/** `PrepareRestoreRequest` message. */
export interface PrepareRestoreRequestMsg {
  operationId: string;
  image: string;
  insecure?: boolean;
  caBundle?: string;
  registryCredentials?: Record<string, string>;
  /** The checkpoint's storage class (whose keys decrypt an encrypted image). */
  storageClassName?: string;
}

/** `RestoreContainerRequest` message. */
export interface RestoreContainerRequestMsg {
  operationId: string;
  storageClass?: StorageClassRefMsg | null;
  archiveKey: string;
  name: string;
}

/** `HealthResponse` message. */
export interface HealthResponseMsg {
  status: string;
  nodeName: string;
  version: string;
  runtime: string;
  runningOperations: number;
  criuVersion: string;
  architecture: string;
  kernelVersion: string;
}

/** `Operation` message (as decoded: absent messages are null). */
export interface OperationMsg {
  id: string;
  kind: string;
  phase: string;
  step: string;
  bytesDone: number;
  bytesTotal: number;
  message: string;
  result?: {
    archive?: { storageClassName: string; key: string; sha256: string; size: number } | null;
    image?: { reference: string; digest: string; tag: string } | null;
    criuStats?: Record<string, number>;
    runtime?: { name: string; version: string; criuVersion: string } | null;
    checkpointTime?: string;
    volumes?: { names: string[]; image: string; size: number } | null;
  } | null;
  restore?: { containerId: string; image: string } | null;
  preCopy?: PreCopyResultMsg | null;
  created: string;
  updated: string;
}

/** `OperationLog` message. */
export interface OperationLogMsg {
  operationId: string;
  sourcePath: string;
  content: string;
  truncated: boolean;
}
