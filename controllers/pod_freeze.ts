/**
 * The controllers' side of a frozen pod: asking the agent of the pod's node
 * to freeze it, renew the freeze, confirm a hand-over, kill or thaw it
 * (`agent/freezes.ts` on the node). The agent thaws the pod by itself when
 * nobody renews the freeze before its deadline.
 * @module
 */
import type { FreezeRef, FreezeStatus, NodeAgent } from "../contract/agent.ts";
import type { ReconcilerDeps } from "./deps.ts";

/** Default seconds after which an unrenewed freeze is thawed by the agent. */
export const DEFAULT_FREEZE_DEADLINE_S = 120;

/** The actions of {@linkcode controlFreeze}. */
export type FreezeAction = "STATUS" | "EXTEND" | "CONFIRM" | "KILL" | "THAW";

async function agentOf(deps: ReconcilerDeps, node: string): Promise<NodeAgent> {
  const agent = await deps.agents.forNode(node);
  if (!agent.freezePod || !agent.controlFreeze) {
    throw new Error(`The agent of node "${node}" cannot freeze pods`);
  }
  return agent;
}

/** Freezes every container of the pod on `node` (idempotent by key). */
export async function freezePod(
  deps: ReconcilerDeps,
  node: string,
  ref: FreezeRef,
  deadlineSeconds = DEFAULT_FREEZE_DEADLINE_S,
): Promise<FreezeStatus> {
  return await (await agentOf(deps, node)).freezePod!({ ...ref, deadlineSeconds });
}

/** Acts on the freeze of `ref` on `node`. */
export async function controlFreeze(
  deps: ReconcilerDeps,
  node: string,
  ref: FreezeRef,
  action: FreezeAction,
  deadlineSeconds?: number,
): Promise<FreezeStatus> {
  return await (await agentOf(deps, node)).controlFreeze!({ ...ref, action, deadlineSeconds });
}

/** RFC 3339 of an epoch-ms value. */
export function isoOf(ms: number | undefined): string | undefined {
  return ms ? new Date(ms).toISOString() : undefined;
}
