/**
 * What the controllers need from a node agent, as an interface: the real
 * implementation speaks gRPC with mutual TLS to the agent on a node; tests
 * can script one to inject faults (errors, timeouts, restarts).
 * @module
 */

/** Phases of an agent operation. */
export type OperationPhase = "Pending" | "Running" | "Succeeded" | "Failed";

/** The outcome of a finished checkpoint operation. */
export interface CheckpointResult {
  /** Where the archive is stored. */
  archive: { storageClassName: string; key: string; sha256: string; size: number };
  /** The pushed checkpoint image. */
  image: { reference: string; digest: string; tag?: string };
  /** CRIU statistics from stats-dump. */
  criuStats?: Record<string, number>;
  /** Runtime that took the checkpoint. */
  runtime?: { name: string; version?: string; criuVersion?: string };
  /** When the checkpoint was taken (RFC 3339). */
  checkpointTime?: string;
  /** emptyDir volumes carried with the checkpoint (their image by digest). */
  volumes?: { names: string[]; image: string; size: number };
}

/** State of an operation on an agent. */
export interface OperationStatus {
  /** Operation id (the caller's idempotency key). */
  id: string;
  /** Where it is. */
  phase: OperationPhase;
  /** Step within the operation, for people (e.g. "pushing image"). */
  step?: string;
  /** Bytes done so far. */
  bytesDone?: number;
  /** Bytes expected in all (0 when unknown). */
  bytesTotal?: number;
  /** Error or progress message. */
  message?: string;
  /** Set when a checkpoint succeeded. */
  result?: CheckpointResult;
  /** Set when a pre-copy succeeded. */
  preCopy?: PreCopyResult;
}

/** One pre-copy round: a full dump that left the container running. */
export interface PreCopyRound {
  /** 1-based. */
  round: number;
  /** Pages in the round's dump. */
  pages: number;
  /** Pages changed since the round before (round 1: all of them). */
  dirtyPages: number;
  /** Bytes of those pages. */
  dirtyBytes: number;
  /** How long the dump (the runc command) took: the container was stopped for at most this long. */
  dumpMs: number;
}

/** The outcome of a pre-copy round. */
export interface PreCopyResult {
  /** The parent-only image: every round so far, a layer each. */
  image: { reference: string; digest: string };
  /** This round. */
  round: PreCopyRound;
  /** Every round's layer, first round first (uncompressed tars: digest = diff_id). */
  layers: { digest: string; size: number }[];
}

/** A request to pre-copy a running container's memory (see {@linkcode NodeAgent.preCopy}). */
export interface PreCopyRequest {
  /** Idempotency key. */
  operationId: string;
  /** Pod namespace. */
  namespace: string;
  /** Pod name. */
  pod: string;
  /** Container name. */
  container: string;
  /** The class whose registry receives the parent image. */
  storageClassName: string;
  /** The previous round's operation (a Succeeded pre-copy of this container); unset: round 1. */
  previousOperationId?: string;
  /** The most rounds of this chain (1..16; the same in every round: it fixes each round's depth). */
  maxRounds: number;
}

/** A request to checkpoint one container. */
export interface CheckpointRequest {
  /** Idempotency key: the same id twice checkpoints once. */
  operationId: string;
  /** Storage prefix segment shared by the containers of one pod checkpoint. */
  checkpointId?: string;
  /** Pod namespace. */
  namespace: string;
  /** Pod name. */
  pod: string;
  /** Container name. */
  container: string;
  /** The CheckpointStorageClass to store into (name). */
  storageClassName: string;
  /** Leave the container running after the dump. */
  leaveRunning: boolean;
  /** JSON of the source pod (travels with the checkpoint as metadata). */
  podJson?: string;
  /** Final checkpoint of a frozen pod: the freeze that holds it (the container stays frozen). */
  freezeKey?: string;
  /** A Succeeded pre-copy of this container on this node: the archive becomes incremental against it. */
  preCopyOperationId?: string;
}

/** A freeze the agent holds (or held). */
export interface FreezeStatus {
  /** The caller's key. */
  key: string;
  /** frozen | confirmed | killed | thawed | unknown. */
  state: "frozen" | "confirmed" | "killed" | "thawed" | "unknown";
  /** Epoch ms of the freeze. */
  frozenAtMs?: number;
  /** Epoch ms after which the agent thaws it, while frozen. */
  deadlineMs?: number;
  /** How it ended, or why a request was refused. */
  message?: string;
}

/** A pod and the key of its freeze. */
export interface FreezeRef {
  /** The caller's key (PodCheckpoint uid). */
  key: string;
  /** Pod namespace. */
  namespace: string;
  /** Pod name. */
  pod: string;
}

/** A request to make a checkpoint image available on a node. */
export interface PrepareRestoreRequest {
  /** Idempotency key. */
  operationId: string;
  /** Image reference, by digest. */
  image: string;
  /** The registry speaks plain HTTP (the storage class's `registry.insecure`). */
  insecure?: boolean;
  /** PEM CAs of the registry (`registry.caBundle`). */
  caBundle?: string;
  /** Credentials for the registry (from the class's `registry.credentialsSecretRef`). */
  credentials?: { username: string; password: string };
  /** The checkpoint's storage class: its `spec.encryption` keys decrypt an encrypted image. */
  storageClassName?: string;
}

/** One node's agent. */
export interface NodeAgent {
  /** Starts (or finds, by operation id) a checkpoint; returns at once. */
  checkpoint(req: CheckpointRequest): Promise<OperationStatus>;
  /** Reads an operation; rejects with an error whose message says "not found" for an unknown id. */
  getOperation(id: string): Promise<OperationStatus>;
  /**
   * Starts one pre-copy round of a running container (containerd nodes): a
   * full dump made incremental against the previous round's, pushed as a
   * layer above the previous rounds' (a parent-only image); returns at once.
   */
  preCopy?(req: PreCopyRequest): Promise<OperationStatus>;
  /** Starts pre-pulling a checkpoint image on this node; returns at once. */
  prepareRestore(req: PrepareRestoreRequest): Promise<OperationStatus>;
  /** When the running containers of a pod on this node started, in epoch ms (the runtime's record). */
  containerStarts?(
    namespace: string,
    pod: string,
  ): Promise<{ name: string; startedAtMs: number }[]>;
  /** Freezes every container of the pod; the agent thaws it after the deadline unless renewed. */
  freezePod?(req: FreezeRef & { deadlineSeconds: number }): Promise<FreezeStatus>;
  /** Acts on a freeze: STATUS, EXTEND (renew), CONFIRM (hand-over), KILL, THAW. */
  controlFreeze?(
    req: FreezeRef & {
      action: "STATUS" | "EXTEND" | "CONFIRM" | "KILL" | "THAW";
      deadlineSeconds?: number;
    },
  ): Promise<FreezeStatus>;
  /** What the node offers a restore (optional: older agents and scripted ones may not say). */
  health?(): Promise<NodeAgentHealth>;
  /**
   * Removes a finished operation's node-local files and forgets it; with
   * `deleteStored`, also its archive in a store that lives on the node.
   * Rejects with a message saying "not found" for an unknown id.
   */
  deleteCheckpoint?(
    operationId: string,
    opts?: { deleteStored?: boolean },
  ): Promise<{ bytesFreed: number }>;
}

/** What a node's agent reports about the node. */
export interface NodeAgentHealth {
  /** Runtime driver ("kubelet", "docker"). */
  runtime?: string;
  /** The node's CRIU version, when the agent can tell. */
  criuVersion?: string;
  /** The node's CPU architecture (GOARCH name). */
  architecture?: string;
  /** The node's kernel release (`uname -r`), when the agent says. */
  kernelVersion?: string;
}

/**
 * The health of `node`'s agent, or undefined when there is no agent, it
 * cannot say, it fails, or it does not answer within `timeoutMs`: for checks
 * that are best effort (later phases meet an unreachable agent anyway).
 */
export function agentHealthWithin(
  agents: AgentConnector,
  node: string,
  opts: { timeoutMs: number },
): Promise<NodeAgentHealth | undefined> {
  return askAgentWithin(agents, node, (a) => a.health?.(), opts);
}

/**
 * Asks `node`'s agent with `ask`; undefined when there is no agent, it
 * cannot say, it fails, or it does not answer within `timeoutMs`.
 */
export async function askAgentWithin<T>(
  agents: AgentConnector,
  node: string,
  ask: (agent: NodeAgent) => Promise<T | undefined> | undefined,
  opts: { timeoutMs: number },
): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const answer = (async () => await ask(await agents.forNode(node)))();
  answer.catch(() => {}); // a late failure after the timeout is nobody's business
  try {
    const timeout = new Promise<undefined>((r) =>
      timer = setTimeout(() => r(undefined), opts.timeoutMs)
    );
    return await Promise.race([answer, timeout]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

/** Finds the agent of a node. */
export interface AgentConnector {
  /** The agent on `nodeName`; rejects with a clear message when there is none. */
  forNode(nodeName: string): Promise<NodeAgent>;
  /** Releases connections. */
  close?(): void;
}
