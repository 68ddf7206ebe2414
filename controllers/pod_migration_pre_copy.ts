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
import type { CheckpointStorageClass, PodMigration } from "../api/mod.ts";
import type { NodeAgent, OperationStatus } from "../contract/agent.ts";
import { apiMessage } from "../kube/lpm_client.ts";
import type { ReconcilerDeps } from "./deps.ts";
import type { ReconcileResult } from "./runtime/controller.ts";
import { phaseTime, setPhase } from "./_status.ts";
import { MigrationFailure, type MigrationStatus } from "./pod_migration_status.ts";
import { pullCredentials } from "./migration_pull_credentials.ts";

/** Milliseconds between pre-copy rounds (the dirty set is measured over this much run time). */
export const PRE_COPY_INTERVAL_MS = 1000;

/** The source agent's pre-copy operation of a container (the migration's uid makes it unique). */
export function preCopyOperationId(pm: PodMigration, container: string): string {
  return `${pm.metadata!.uid}-pc-${container}`;
}

/** The refusal of a pre-copy a class cannot carry, or undefined. */
export function preCopyClassProblem(cls: CheckpointStorageClass): string | undefined {
  if (cls.spec.encryption) {
    return `spec.preCopy needs a class without encryption in this version; CheckpointStorageClass ` +
      `"${cls.metadata?.name}" encrypts (spec.encryption)`;
  }
  return undefined;
}

async function agentOf(deps: ReconcilerDeps, node: string, role: string): Promise<NodeAgent> {
  try {
    return await deps.agents.forNode(node);
  } catch (err) {
    throw new Error(`Cannot reach the agent of ${role} node "${node}": ${apiMessage(err)}`);
  }
}

/** One container: its pre-copy on the source, then the target's pull of the parent image. */
async function advanceContainer(
  deps: ReconcilerDeps,
  pm: PodMigration,
  status: MigrationStatus,
  name: string,
  agents: { source: NodeAgent; target: NodeAgent },
  pull: { cls?: CheckpointStorageClass; credentials?: { username: string; password: string } },
): Promise<boolean> {
  const operationId = preCopyOperationId(pm, name);
  const entries = status.preCopy!.containers;
  let entry = entries.find((c) => c.name === name);
  if (!entry) entries.push(entry = { name, operationId });
  if (!agents.source.preCopy) {
    throw new MigrationFailure(
      "PreCopyUnsupported",
      `The agent of source node "${status.sourceNode}" cannot pre-copy`,
    );
  }
  const op: OperationStatus = await agents.source.preCopy({
    operationId,
    namespace: pm.metadata!.namespace!,
    pod: pm.spec.podName,
    container: name,
    storageClassName: status.storageClassName!,
    rounds: pm.spec.preCopy!.rounds!,
    intervalMs: PRE_COPY_INTERVAL_MS,
  });
  if (op.phase === "Failed") {
    throw new MigrationFailure(
      "PreCopyFailed",
      `Pre-copy of container "${name}" failed on node "${status.sourceNode}" (the source was ` +
        `never frozen and runs on): ${op.message ?? "no message"}`,
    );
  }
  if (op.phase !== "Succeeded" || !op.preCopy) return false;
  if (!entry.image) {
    entry.image = op.preCopy.image.reference;
    entry.rounds = op.preCopy.rounds;
    const last = op.preCopy.rounds.at(-1)!;
    deps.events.normal(
      pm,
      "PreCopied",
      `Container "${name}": ${op.preCopy.rounds.length} round(s), the last ${last.pages} pages ` +
        `(${last.dirtyPages} dirty since the round before, its dump stopped it ${last.dumpMs} ms)`,
    );
  }
  const registry = pull.cls?.spec.registry;
  const pulled = await agents.target.prepareRestore({
    operationId: `${pm.metadata!.uid}-pcpull-${name}`,
    image: entry.image,
    insecure: registry?.insecure,
    caBundle: registry?.caBundle,
    credentials: pull.credentials,
    storageClassName: status.storageClassName,
  });
  if (pulled.phase === "Failed") {
    throw new MigrationFailure(
      "ImagePullFailed",
      `Target node "${status.targetNode}" cannot pull the pre-copy image ${entry.image}: ${
        pulled.message ?? "no message"
      }`,
    );
  }
  return pulled.phase === "Succeeded";
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
  const cls = await deps.cache.get<CheckpointStorageClass>(
    "checkpointstorageclasses",
    "",
    status.storageClassName ?? "",
  );
  const credentials = cls?.spec.registry?.repository ? await pullCredentials(deps, cls) : undefined;
  const agents = {
    source: await agentOf(deps, status.sourceNode!, "source"),
    target: await agentOf(deps, status.targetNode!, "target"),
  };
  status.preCopy ??= { containers: [] };
  let pending = 0;
  for (const c of pod.spec?.containers ?? []) {
    if (!await advanceContainer(deps, pm, status, c.name, agents, { cls, credentials })) pending++;
  }
  if (pending > 0) return { requeueAfterMs: Math.max(deps.pollMs, 500) };
  const started = phaseTime(status, "PreCopying") ?? now;
  status.timings = { ...status.timings, preCopyMs: now.getTime() - started.getTime() };
  setPhase(status, "Checkpointing", now);
}
