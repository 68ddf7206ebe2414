/**
 * A scripted node agent for controller tests: it implements the controllers'
 * AgentConnector in memory and plays back faults on demand (unreachable
 * nodes, failing calls, failed or lost operations, slow progress). It stands
 * beside the real agent's tests, never instead of them.
 * @module
 */
import type {
  AgentConnector,
  CheckpointRequest,
  FreezeStatus,
  NodeAgent,
  NodeAgentHealth,
  OperationStatus,
} from "../contract/agent.ts";

/** How the scripted agent of one node behaves. */
export interface NodeScript {
  /** forNode() rejects: no agent on this node. */
  unreachable?: boolean;
  /** The next N checkpoint() calls reject (transient errors). */
  failCheckpointCalls?: number;
  /** Checkpoint operations end Failed with this message. */
  checkpointFailsWith?: string;
  /** getOperation() answers "not found" (an agent that lost its state). */
  loseOperations?: boolean;
  /** getOperation() polls before an operation completes. Default 2. */
  pollsToFinish?: number;
  /** freezePod() rejects with this message. */
  freezeFailsWith?: string;
  /** Freezes held on this node are found thawed at the next call (a deadline that passed). */
  thawFreezes?: boolean;
  /** prepareRestore operations end Failed with this message. */
  pullFailsWith?: string;
  /** What health() reports as the node's CRIU version (default: nothing). */
  criuVersion?: string;
  /** What health() reports as the node's kernel (default: nothing). */
  kernelVersion?: string;
  /** health() never answers (an agent that hangs). */
  healthHangs?: boolean;
}

/** A record of what the controllers asked for. */
export interface ScriptedCall {
  node: string;
  method:
    | "checkpoint"
    | "getOperation"
    | "prepareRestore"
    | "health"
    | "freeze"
    | "deleteCheckpoint";
  arg: string;
}

/** The scripted connector: set `scripts[node]` to change a node's behaviour at any time. */
export class ScriptedAgents implements AgentConnector {
  /** Behaviour per node name (missing: a healthy agent). */
  readonly scripts: Record<string, NodeScript> = {};
  /** Every call, in order. */
  readonly calls: ScriptedCall[] = [];
  /** Operations by id. */
  readonly operations = new Map<string, OperationStatus & { polls: number; node: string }>();
  /** Freezes by key: what a real agent would hold (state only; nothing is paused). */
  readonly freezes = new Map<string, FreezeStatus & { node: string; pod: string }>();

  /** Creates the connector; `registry` names the image repository in results. */
  constructor(readonly registry = "127.0.0.1:5000/lpm") {}

  forNode(node: string): Promise<NodeAgent> {
    if (this.scripts[node]?.unreachable) {
      return Promise.reject(new Error(`no agent answers on node "${node}"`));
    }
    return Promise.resolve(new ScriptedNode(this, node));
  }

  /** Calls of one method. */
  callsOf(method: ScriptedCall["method"]): ScriptedCall[] {
    return this.calls.filter((c) => c.method === method);
  }
}

/** One node's scripted agent. */
class ScriptedNode implements NodeAgent {
  constructor(private readonly agents: ScriptedAgents, private readonly node: string) {}

  private get script(): NodeScript {
    return this.agents.scripts[this.node] ?? {};
  }

  checkpoint(req: CheckpointRequest) {
    this.agents.calls.push({ node: this.node, method: "checkpoint", arg: req.operationId });
    if ((this.script.failCheckpointCalls ?? 0) > 0) {
      this.script.failCheckpointCalls!--;
      return Promise.reject(new Error("connection reset by peer"));
    }
    const existing = this.agents.operations.get(req.operationId);
    if (existing) return Promise.resolve(strip(existing));
    const digest = `sha256:${req.operationId.replaceAll("-", "").padEnd(64, "0").slice(0, 64)}`;
    const op = {
      id: req.operationId,
      phase: "Running" as const,
      step: "checkpointing",
      bytesDone: 0,
      bytesTotal: 1000,
      polls: 0,
      node: this.node,
      result: {
        archive: {
          storageClassName: req.storageClassName,
          key: `${req.namespace}/${req.pod}/${req.operationId}/${req.container}.tar`,
          sha256: digest.slice(7),
          size: 1000,
        },
        image: {
          reference: `${this.agents.registry}/${req.pod}-${req.container}@${digest}`,
          digest,
        },
        runtime: { name: "scripted", version: "0" },
        criuStats: { frozenTimeUs: 1234 },
      },
    };
    this.agents.operations.set(req.operationId, op);
    return Promise.resolve(strip(op));
  }

  getOperation(id: string) {
    this.agents.calls.push({ node: this.node, method: "getOperation", arg: id });
    const op = this.agents.operations.get(id);
    if (!op || this.script.loseOperations) {
      return Promise.reject(new Error(`operation "${id}" not found`));
    }
    if (op.phase === "Running") {
      op.polls++;
      op.bytesDone = Math.min(op.bytesTotal ?? 0, op.polls * 400);
      if (op.polls >= (this.script.pollsToFinish ?? 2)) {
        if (this.script.checkpointFailsWith && op.result) {
          op.phase = "Failed";
          op.message = this.script.checkpointFailsWith;
        } else if (this.script.pullFailsWith && !op.result) {
          op.phase = "Failed";
          op.message = this.script.pullFailsWith;
        } else {
          op.phase = "Succeeded";
          op.bytesDone = op.bytesTotal;
        }
      }
    }
    return Promise.resolve(strip(op));
  }

  /** Forgets a finished operation, as the real agent does (it stores nothing to delete). */
  deleteCheckpoint(id: string): Promise<{ bytesFreed: number }> {
    this.agents.calls.push({ node: this.node, method: "deleteCheckpoint", arg: id });
    const op = this.agents.operations.get(id);
    if (!op || this.script.loseOperations) {
      return Promise.reject(new Error(`operation "${id}" not found`));
    }
    if (op.phase === "Running") {
      return Promise.reject(new Error(`Operation "${id}" is still Running`));
    }
    this.agents.operations.delete(id);
    return Promise.resolve({ bytesFreed: 0 });
  }

  prepareRestore(req: Parameters<NodeAgent["prepareRestore"]>[0]): Promise<OperationStatus> {
    this.agents.calls.push({ node: this.node, method: "prepareRestore", arg: req.image });
    let op = this.agents.operations.get(req.operationId);
    if (!op) {
      op = { id: req.operationId, phase: "Running", polls: 0, node: this.node };
      this.agents.operations.set(req.operationId, op);
    }
    return this.getOperation(req.operationId);
  }

  freezePod(req: Parameters<NonNullable<NodeAgent["freezePod"]>>[0]): Promise<FreezeStatus> {
    this.agents.calls.push({ node: this.node, method: "freeze", arg: `FREEZE ${req.key}` });
    if (this.script.freezeFailsWith) return Promise.reject(new Error(this.script.freezeFailsWith));
    let f = this.agents.freezes.get(req.key);
    if (!f) {
      const at = Date.now();
      f = {
        key: req.key,
        state: "frozen",
        frozenAtMs: at,
        deadlineMs: at + req.deadlineSeconds * 1000,
        node: this.node,
        pod: `${req.namespace}/${req.pod}`,
      };
      this.agents.freezes.set(req.key, f);
    }
    return Promise.resolve(freezeView(f));
  }

  controlFreeze(
    req: Parameters<NonNullable<NodeAgent["controlFreeze"]>>[0],
  ): Promise<FreezeStatus> {
    this.agents.calls.push({ node: this.node, method: "freeze", arg: `${req.action} ${req.key}` });
    const f = this.agents.freezes.get(req.key);
    if (!f) return Promise.resolve({ key: req.key, state: "unknown" as const });
    // A script can make the deadline pass: the next renewal finds the pod thawed.
    if (this.script.thawFreezes && f.state === "frozen") f.state = "thawed";
    switch (req.action) {
      case "EXTEND":
        if (f.state === "frozen") {
          f.deadlineMs = Date.now() + (req.deadlineSeconds ?? 120) * 1000;
        }
        break;
      case "CONFIRM":
        if (f.state === "frozen") f.state = "confirmed";
        break;
      case "KILL":
        if (f.state === "confirmed" || f.state === "frozen") f.state = "killed";
        break;
      case "THAW":
        if (f.state === "frozen") f.state = "thawed";
        break;
    }
    return Promise.resolve(freezeView(f));
  }

  health(): Promise<NodeAgentHealth> {
    this.agents.calls.push({ node: this.node, method: "health", arg: "" });
    if (this.script.healthHangs) return new Promise(() => {});
    return Promise.resolve({
      runtime: "scripted",
      criuVersion: this.script.criuVersion,
      kernelVersion: this.script.kernelVersion,
      architecture: "amd64",
    });
  }
}

function freezeView(f: FreezeStatus & { node?: string; pod?: string }): FreezeStatus {
  const { node: _n, pod: _p, ...rest } = f;
  return { ...rest };
}

function strip(op: OperationStatus & { polls?: number; node?: string }): OperationStatus {
  const { polls: _p, node: _n, ...rest } = op;
  return structuredClone(rest);
}
