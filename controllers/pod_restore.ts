/**
 * The PodRestore reconciler: restores a checkpoint as a pod in THIS cluster,
 * with no access to the cluster that took it. The source (a storage key, an
 * image reference or an OCI layout; see `pod_restore_sources.ts`) is first
 * described, then checked against the target node (architecture, runtime,
 * the node's CRIU version as its agent reports it), then imported (images
 * made pullable here, digests verified), and the pod is created from the pod
 * spec that travelled with the checkpoint, with each checkpoint image by
 * digest. Phases: Pending -> Importing -> Restoring -> Succeeded | Failed;
 * one status patch per reconcile.
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import type { CheckpointStorageClass, PodRestore } from "../api/mod.ts";
import { apiMessage, apiStatus } from "../kube/lpm_client.ts";
import type { ReconcilerDeps } from "./deps.ts";
import type { Reconcile, ReconcileResult } from "./runtime/controller.ts";
import { objectReconciler } from "./_reconcile.ts";
import type { Logger } from "../base/log.ts";
import { type Condition, isTerminal, setCondition, setPhase } from "./_status.ts";
import {
  buildRestoredPod,
  MIGRATION_LABEL,
  nodeReady,
  RESTORED_FROM_ANNOTATION,
} from "./restored_pod.ts";
import { incompatibility } from "./pod_restore_compat.ts";
import { agentHealthWithin } from "../contract/agent.ts";
import { describeSource, RestoreFailure } from "./pod_restore_sources.ts";
import { decryptOnTarget } from "./pod_restore_decrypt.ts";
import { namespaceRefusal, podSpecRefusal } from "./pod_restore_policy.ts";

export { RestoreFailure };

/** Label on a pod made by a PodRestore: the PodRestore's name. */
export const RESTORE_LABEL = "lpm.my.domain/restore";

type Status = NonNullable<PodRestore["status"]>;

/** Options of the PodRestore reconciler. */
export interface PodRestoreOptions {
  /** How long the restored pod may take to run. Default 5 min. */
  runTimeoutMs?: number;
}

/** Builds the PodRestore reconcile function. */
export function podRestoreReconciler(
  deps: ReconcilerDeps,
  opts: PodRestoreOptions = {},
): Reconcile {
  return objectReconciler<PodRestore>(deps, {
    plural: "podrestores",
    // No finalizer: a PodRestore leaves nothing behind but its pod, which it owns.
    async reconcileNormal(pr, status, log) {
      if (isTerminal(status.phase)) return;
      const conditions = (status.conditions ??= []) as Condition[];
      try {
        return await step(deps, pr, status, conditions, opts, log);
      } catch (err) {
        const f = err instanceof RestoreFailure
          ? err
          : new RestoreFailure("RestoreError", (err as Error).message ?? apiMessage(err));
        const now = deps.now();
        setPhase(status, "Failed", now);
        status.message = f.message;
        setCondition(conditions, {
          type: "Succeeded",
          status: "False",
          reason: f.reason,
          message: f.message,
        }, now);
      }
    },
    patched(pr, status, before, log) {
      if (status.phase === before.phase) return;
      log.info("phase changed", { from: before.phase ?? "", to: status.phase });
      deps.events[status.phase === "Failed" ? "warning" : "normal"](
        pr,
        `Phase${status.phase}`,
        status.phase === "Failed"
          ? status.message ?? "Restore failed"
          : `${before.phase ?? "New"} -> ${status.phase}`,
      );
    },
    done: (_pr, status, before, result) =>
      Promise.resolve(
        status.phase !== before.phase && !isTerminal(status.phase) ? { requeueAfterMs: 0 } : result,
      ),
  });
}

async function step(
  deps: ReconcilerDeps,
  pr: PodRestore,
  status: Status,
  conditions: Condition[],
  opts: PodRestoreOptions,
  log: Logger,
): Promise<ReconcileResult> {
  const now = deps.now();
  const src = pr.spec.source ?? {};
  switch (status.phase ?? "Pending") {
    case "Pending": {
      const kinds = (["image", "storage", "layout"] as const).filter((k) => src[k]);
      if (kinds.length !== 1) {
        throw new RestoreFailure(
          "InvalidSource",
          `PodRestore needs exactly one source (image, storage or layout), got ${
            kinds.length ? kinds.map((k) => `"${k}"`).join(", ") : "none"
          }`,
        );
      }
      setPhase(status, "Importing", now);
      setCondition(conditions, {
        type: "Imported",
        status: "False",
        reason: "Importing",
        message: src.storage
          ? `Reading "${src.storage.key}" from class "${src.storage.storageClassName}"`
          : src.image
          ? `Reading ${src.image.references.map((r) => `"${r.image}"`).join(", ")}`
          : `Reading OCI layout "${src.layout!.path}"`,
      }, now);
      return;
    }
    case "Importing": {
      const podName = await importAndCreate(deps, pr, conditions, log);
      status.restoredPodName = podName;
      setPhase(status, "Restoring", now);
      return;
    }
    case "Restoring": {
      const ns = pr.metadata!.namespace!;
      const pod = await deps.cache.pod(ns, status.restoredPodName!);
      if (!pod) {
        throw new RestoreFailure(
          "PodGone",
          `Restored pod "${ns}/${status.restoredPodName}" was deleted before it ran`,
        );
      }
      const phase = pod.status?.phase;
      if (phase === "Running" || phase === "Succeeded") {
        setPhase(status, "Succeeded", now);
        status.message =
          `Pod "${ns}/${pod.metadata?.name}" restored on node "${pod.spec?.nodeName}"`;
        setCondition(conditions, {
          type: "Succeeded",
          status: "True",
          reason: "PodRunning",
          message: status.message,
        }, now);
        return;
      }
      const waiting = pod.status?.containerStatuses?.map((c) => c.state?.waiting).find((w) =>
        w && w.reason && !["ContainerCreating", "PodInitializing"].includes(w.reason)
      );
      if (phase === "Failed" || waiting?.reason === "CreateContainerError") {
        throw new RestoreFailure(
          "PodFailed",
          `Restored pod "${ns}/${pod.metadata?.name}" failed: ${
            waiting ? `${waiting.reason}: ${waiting.message ?? ""}` : pod.status?.message ?? phase
          }`,
        );
      }
      const since = status.phaseTransitionTimestamps?.findLast((p) => p.phase === "Restoring");
      const limit = opts.runTimeoutMs ?? 300_000;
      if (since && now.getTime() - new Date(since.phaseTransitionTimestamp).getTime() > limit) {
        throw new RestoreFailure(
          "Timeout",
          `Restored pod "${ns}/${pod.metadata?.name}" did not run within ${
            limit / 1000
          } s (phase ${phase}${waiting ? `, ${waiting.reason}` : ""})`,
        );
      }
      return { requeueAfterMs: deps.pollMs };
    }
  }
}

/** Imports the checkpoint into this cluster's registry and creates the pod; returns its name. */
async function importAndCreate(
  deps: ReconcilerDeps,
  pr: PodRestore,
  conditions: Condition[],
  log: Logger,
): Promise<string> {
  const ns = pr.metadata!.namespace!;
  const source = await describeSource(deps, pr);
  try {
    const meta = source.meta;
    // Authorization before anything is imported (pod_restore_policy.ts).
    const nsWhy = namespaceRefusal(meta.namespace, ns, await holdingClass(deps, pr));
    if (nsWhy) throw new RestoreFailure("NamespaceNotAllowed", nsWhy);
    const podWhy = podSpecRefusal(meta.sourcePod?.spec, meta.namespace, ns);
    if (podWhy) throw new RestoreFailure("Forbidden", podWhy);
    const node = await pickNode(deps, pr.spec.nodeName);
    const nodeName = node.metadata!.name!;
    const nodeCriu = await nodeCriuVersion(deps, nodeName, log);
    const why = incompatibility(meta, node, nodeCriu);
    if (why) throw new RestoreFailure("Incompatible", why);
    log.info("checkpoint fits the node", {
      node: nodeName,
      architecture: meta.architecture ?? "",
      criu: meta.runtime?.criuVersion ?? "",
      nodeCriu: nodeCriu ?? "",
    });

    const { images, summary, encrypted } = await source.materialize();
    log.info("checkpoint imported", { images: Object.values(images).join(" ") });
    if (encrypted?.length) {
      await decryptOnTarget(deps, nodeName, images, encrypted, {
        cls: await holdingClass(deps, pr),
        operationPrefix: pr.metadata?.uid ?? pr.metadata!.name!,
      });
      log.info("encrypted images decrypted on the node", { node: nodeName });
    }
    setCondition(conditions, {
      type: "Imported",
      status: "True",
      reason: "ImagePushed",
      message: summary,
    }, deps.now());

    const podName = pr.spec.podName ??
      `${(meta.pod ?? pr.metadata!.name!).slice(0, 50)}-r${
        (pr.metadata?.uid ?? "").replaceAll("-", "").slice(0, 6)
      }`;
    const pod = buildRestoredPod(meta.sourcePod!, {
      name: podName,
      targetNode: nodeName,
      targetNodeLabels: node.metadata?.labels,
      images,
      migrationName: "",
    });
    const labels: Record<string, string> = {
      ...pod.metadata!.labels,
      ...pr.spec.labels,
      [RESTORE_LABEL]: pr.metadata!.name!,
    };
    delete labels[MIGRATION_LABEL];
    pod.metadata = {
      name: podName,
      namespace: ns,
      labels,
      annotations: {
        ...pod.metadata!.annotations,
        [RESTORED_FROM_ANNOTATION]: `${meta.namespace}/${meta.pod}`,
      },
      ownerReferences: [{
        apiVersion: "lpm.my.domain/v1",
        kind: "PodRestore",
        name: pr.metadata!.name!,
        uid: pr.metadata!.uid!,
      }],
    };
    // The source cluster's volumes and service account token do not travel.
    pod.spec!.volumes = pod.spec!.volumes?.filter((v) => !v.name.startsWith("kube-api-access-"));
    for (const c of [...pod.spec!.containers, ...(pod.spec!.initContainers ?? [])]) {
      c.volumeMounts = c.volumeMounts?.filter((m) => !m.name.startsWith("kube-api-access-"));
    }
    try {
      await deps.core.createNamespacedPod({ namespace: ns, body: pod });
    } catch (err) {
      if (apiStatus(err) !== 409) {
        throw new RestoreFailure(
          "PodCreateFailed",
          `Cannot create pod "${ns}/${podName}": ${apiMessage(err)}`,
        );
      }
    }
    return podName;
  } finally {
    await source.close();
  }
}

/**
 * The target node's CRIU version as its agent reports it, or undefined when
 * there is no agent, it does not say, or it does not answer within 5 s (the
 * CRIU check is then skipped; the other checks still apply).
 */
async function nodeCriuVersion(
  deps: ReconcilerDeps,
  node: string,
  log: Logger,
): Promise<string | undefined> {
  const v = (await agentHealthWithin(deps.agents, node, { timeoutMs: 5000 }))?.criuVersion;
  if (!v) log.info("node CRIU version unknown", { node });
  return v;
}

/**
 * The class that holds the checkpoint, whose restore policy applies: the
 * named class (storage), the class whose registry serves the image (image),
 * or the default class (layout).
 */
async function holdingClass(
  deps: ReconcilerDeps,
  pr: PodRestore,
): Promise<CheckpointStorageClass | undefined> {
  const src = pr.spec.source;
  if (src.storage) {
    return await deps.cache.get<CheckpointStorageClass>(
      "checkpointstorageclasses",
      "",
      src.storage.storageClassName,
    );
  }
  const classes = await deps.cache.list<CheckpointStorageClass>("checkpointstorageclasses");
  if (src.image) {
    const host = src.image.references[0]?.image.split("/")[0];
    return classes.find((c) => c.spec.registry?.repository.split("/")[0] === host);
  }
  return classes.find((c) => c.spec.default);
}

async function pickNode(deps: ReconcilerDeps, name?: string): Promise<k8s.V1Node> {
  if (name) {
    const node = await deps.cache.node(name);
    if (!node) {
      throw new RestoreFailure("NodeNotFound", `Node "${name}" does not exist in this cluster`);
    }
    return node;
  }
  const ready = (await deps.cache.nodes()).filter(nodeReady);
  if (!ready.length) throw new RestoreFailure("NoNode", "No Ready node in this cluster");
  return ready[0];
}
