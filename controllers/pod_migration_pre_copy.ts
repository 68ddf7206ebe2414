/**
 * The PreCopying phase of a PodMigration with `spec.preCopy.rounds`
 * (docs/pre-copy.md): while the source still runs, its node's agent dumps
 * each container round after round (leave-running) until the dirty set stops
 * shrinking, and pushes the last round as a parent-only image; the target
 * node pulls that image. Only then is the source frozen (Checkpointing), and
 * the final checkpoint, made incremental against the round, carries only
 * the pages dirtied since. Nothing is frozen in this phase: a failure here
 * leaves the source running as it was.
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import type { CheckpointStorageClass, PodMigration, PreCopyRoundStatus } from "../api/mod.ts";
import { askAgentWithin, type NodeAgent, type OperationStatus } from "../contract/agent.ts";
import { apiMessage } from "../kube/lpm_client.ts";
import type { ReconcilerDeps } from "./deps.ts";
import type { ReconcileResult } from "./runtime/controller.ts";
import { phaseTime, setPhase } from "./_status.ts";
import { MigrationFailure, type MigrationStatus } from "./pod_migration_status.ts";
import { pullOnTarget, type TargetPull, targetPull } from "./migration_pull.ts";

/**
 * The source agent's operation of pre-copy round `round` of a container (the
 * migration's uid makes it unique).
 */
export function preCopyOperationId(pm: PodMigration, container: string, round: number): string {
  return `${pm.metadata!.uid}-pc${round}-${container}`;
}

/**
 * True when no further round is worth it: the limit is reached, or the last
 * round's dirty set did not shrink (the workload dirties pages as fast as
 * they travel) or is small (under 1/32 of its pages: what is left costs
 * little while frozen). KubeVirt's convergence rule, in rounds.
 */
export function preCopyConverged(rounds: PreCopyRoundStatus[], limit: number): boolean {
  const last = rounds.at(-1);
  if (!last) return false;
  if (rounds.length >= limit) return true;
  const before = rounds.at(-2);
  if (!before) return false;
  return last.dirtyBytes >= before.dirtyBytes || last.dirtyPages * 32 <= last.pages;
}

/** The refusal of a pre-copy a class cannot carry, or undefined. */
export function preCopyClassProblem(cls: CheckpointStorageClass): string | undefined {
  if (cls.spec.encryption) {
    return `spec.preCopy needs a class without encryption in this version; CheckpointStorageClass ` +
      `"${cls.metadata?.name}" encrypts (spec.encryption)`;
  }
  return undefined;
}

async function sourceAgent(deps: ReconcilerDeps, node: string): Promise<NodeAgent> {
  try {
    return await deps.agents.forNode(node);
  } catch (err) {
    throw new Error(`Cannot reach the agent of source node "${node}": ${apiMessage(err)}`);
  }
}

/** A container's pre-copy entry in the status. */
type Entry = NonNullable<NonNullable<PodMigration["status"]>["preCopy"]>["containers"][number];

/** Starts or reads round `round` on the source; records it once it Succeeded. */
async function round(
  deps: ReconcilerDeps,
  pm: PodMigration,
  status: MigrationStatus,
  entry: Entry,
  source: NodeAgent,
  n: number,
): Promise<boolean> {
  if (!source.preCopy) {
    throw new MigrationFailure(
      "PreCopyUnsupported",
      `The agent of source node "${status.sourceNode}" cannot pre-copy`,
    );
  }
  const operationId = preCopyOperationId(pm, entry.name, n);
  const op: OperationStatus = await source.preCopy({
    operationId,
    namespace: pm.metadata!.namespace!,
    pod: pm.spec.podName,
    container: entry.name,
    storageClassName: status.storageClassName!,
    previousOperationId: n > 1 ? entry.operationId : undefined,
    maxRounds: pm.spec.preCopy!.rounds!,
  });
  if (op.phase === "Failed") {
    throw new MigrationFailure(
      "PreCopyFailed",
      `Pre-copy round ${n} of container "${entry.name}" failed on node "${status.sourceNode}" ` +
        `(the source was never frozen and runs on): ${op.message ?? "no message"}`,
    );
  }
  if (op.phase !== "Succeeded" || !op.preCopy) return false;
  const r = op.preCopy.round;
  entry.operationId = operationId;
  entry.image = op.preCopy.image.reference;
  entry.rounds = [...(entry.rounds ?? []), r];
  deps.events.normal(
    pm,
    "PreCopyRound",
    `Container "${entry.name}" round ${n}: ${r.pages} pages, ${r.dirtyPages} changed since the ` +
      `round before (${(r.dirtyBytes / 1048576).toFixed(1)} MiB to send); its dump took ` +
      `${r.dumpMs} ms (the source is stopped for at most that long)`,
  );
  return true;
}

/**
 * One container, level-based: round 1 on the source, the target's pull of
 * its image, then another round while the dirty set is worth one; true when
 * the last round is on the target and no other is due.
 */
async function advanceContainer(
  deps: ReconcilerDeps,
  pm: PodMigration,
  status: MigrationStatus,
  name: string,
  source: NodeAgent,
  pull: TargetPull,
): Promise<boolean> {
  const entries = status.preCopy!.containers;
  let entry = entries.find((c) => c.name === name);
  if (!entry) entries.push(entry = { name, operationId: preCopyOperationId(pm, name, 1) });
  const limit = pm.spec.preCopy!.rounds!;
  while (true) {
    const done = entry.rounds?.length ?? 0;
    if (done === 0) {
      if (!await round(deps, pm, status, entry, source, 1)) return false;
      continue;
    }
    // The round's image on the target: only its newest layer crosses.
    const id = `${pm.metadata!.uid}-pcpull${done}-${name}`;
    if (!await pullOnTarget(pull, id, entry.image!)) return false;
    if (preCopyConverged(entry.rounds!, limit)) return true;
    if (!await round(deps, pm, status, entry, source, done + 1)) return false;
  }
}

/**
 * The step of phase PreCopying: starts or follows each container's
 * pre-copy and the target's pull of its parent image; moves on to
 * Checkpointing when every container's is on the target.
 */
export async function stepPreCopying(
  deps: ReconcilerDeps,
  pm: PodMigration,
  status: MigrationStatus,
): Promise<ReconcileResult> {
  const now = deps.now();
  const ns = pm.metadata!.namespace!;
  const pod: k8s.V1Pod | undefined = await deps.cache.pod(ns, pm.spec.podName);
  if (!pod || pod.metadata?.deletionTimestamp || pod.status?.phase !== "Running") {
    throw new MigrationFailure(
      "PodNotRunning",
      `Pod "${ns}/${pm.spec.podName}" is ${
        pod ? "no longer running" : "gone"
      }: it stopped during pre-copy`,
    );
  }
  const source = await sourceAgent(deps, status.sourceNode!);
  const pull = await targetPull(deps, status, status.targetNode!);
  status.preCopy ??= { containers: [] };
  let pending = 0;
  for (const c of pod.spec?.containers ?? []) {
    if (!await advanceContainer(deps, pm, status, c.name, source, pull)) pending++;
  }
  if (pending > 0) return { requeueAfterMs: Math.max(deps.pollMs, 500) };
  const started = phaseTime(status, "PreCopying") ?? now;
  status.timings = { ...status.timings, preCopyMs: now.getTime() - started.getTime() };
  setPhase(status, "Checkpointing", now);
}

/**
 * Forgets a finished migration's pre-copy rounds on the source node: their
 * operations and any dump still there (a migration that failed before its
 * final checkpoint used the last one). Best effort, in the background: an
 * agent that does not answer keeps a few files until its node's cleanup.
 */
export async function releasePreCopy(
  deps: ReconcilerDeps,
  pm: PodMigration,
  status: MigrationStatus,
  log: { warn(msg: string, fields?: Record<string, unknown>): void },
): Promise<void> {
  const node = status.sourceNode;
  if (!node || !status.preCopy?.containers.length) return;
  for (const c of status.preCopy.containers) {
    // Rounds recorded, and the one that may have been under way.
    for (let n = 1; n <= (c.rounds?.length ?? 0) + 1; n++) {
      const id = preCopyOperationId(pm, c.name, n);
      await askAgentWithin(deps.agents, node, (a) => a.deleteCheckpoint?.(id), { timeoutMs: 5000 })
        .catch((err) => log.warn("cannot forget a pre-copy round", { id, error: String(err) }));
    }
  }
}
