/**
 * The PodRestore reconciler: restores a stored checkpoint as a pod in THIS
 * cluster, with no access to the cluster that took it. For a `storage`
 * source the controller itself reads `<container>.checkpoint.json` from the
 * class's store, checks the target node (architecture, runtime, CRIU),
 * downloads the archive (sha256 verified against the metadata while it
 * streams), rebuilds the OCI checkpoint image with `oci/`, pushes it to the
 * class's registry and creates the pod from the stored pod spec, with the
 * checkpoint image by digest. Phases: Pending -> Importing -> Restoring ->
 * Succeeded | Failed; one status patch per reconcile.
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import type { CheckpointStorageClass, PodRestore } from "../api/mod.ts";
import { buildCheckpointImage, pushImage } from "../oci/mod.ts";
import { createStore, decodeSecretData } from "../storage/mod.ts";
import { apiMessage, apiStatus } from "./lpm_client.ts";
import type { ReconcilerDeps } from "./deps.ts";
import { type ReconcileResult, splitKey } from "./runtime/controller.ts";
import type { Logger } from "./runtime/log.ts";
import { type Condition, isTerminal, setCondition, setPhase } from "./_status.ts";
import {
  buildRestoredPod,
  MIGRATION_LABEL,
  nodeReady,
  RESTORED_FROM_ANNOTATION,
} from "./restored_pod.ts";
import { type CheckpointMetadata, incompatibility, metadataKey } from "./pod_restore_compat.ts";

/** Label on a pod made by a PodRestore: the PodRestore's name. */
export const RESTORE_LABEL = "lpm.my.domain/restore";

type Status = NonNullable<PodRestore["status"]>;

/** A terminal failure with a condition reason. */
export class RestoreFailure extends Error {
  /** Condition reason. */
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** Options of the PodRestore reconciler. */
export interface PodRestoreOptions {
  /** How long the restored pod may take to run. Default 5 min. */
  runTimeoutMs?: number;
}

/** Builds the PodRestore reconcile function. */
export function podRestoreReconciler(deps: ReconcilerDeps, opts: PodRestoreOptions = {}) {
  return async (key: string, log: Logger): Promise<ReconcileResult> => {
    const { namespace, name } = splitKey(key);
    const pr = await deps.lpm.get<PodRestore>("podrestores", namespace, name);
    if (!pr || pr.metadata?.deletionTimestamp || isTerminal(pr.status?.phase)) return;
    const before = JSON.stringify(pr.status ?? {});
    const status = structuredClone(pr.status ?? {}) as Status;
    const conditions = (status.conditions ??= []) as Condition[];
    const phaseBefore = status.phase;
    const now = deps.now();
    let result: ReconcileResult;
    try {
      result = await step(deps, pr, status, conditions, opts, log);
    } catch (err) {
      const f = err instanceof RestoreFailure
        ? err
        : new RestoreFailure("RestoreError", (err as Error).message ?? apiMessage(err));
      setPhase(status, "Failed", now);
      status.message = f.message;
      setCondition(conditions, {
        type: "Succeeded",
        status: "False",
        reason: f.reason,
        message: f.message,
      }, now);
      result = undefined;
    }
    status.observedGeneration = pr.metadata?.generation;
    if (JSON.stringify(status) !== before) {
      await deps.lpm.patchStatus("podrestores", namespace, name, status);
    }
    if (status.phase !== phaseBefore) {
      log.info("phase changed", { from: phaseBefore ?? "", to: status.phase });
      deps.events[status.phase === "Failed" ? "warning" : "normal"](
        pr,
        `Phase${status.phase}`,
        status.phase === "Failed"
          ? status.message ?? "Restore failed"
          : `${phaseBefore ?? "New"} -> ${status.phase}`,
      );
      if (!isTerminal(status.phase)) return { requeueAfterMs: 0 };
    }
    return result;
  };
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
      if (!src.storage) {
        // Image and layout sources carry the archive but not the pod spec
        // (the agent stores the pod spec only in the class's metadata JSON).
        throw new RestoreFailure(
          "PodSpecUnavailable",
          `A "${kinds[0]}" source carries no pod spec: restore from the storage key of the ` +
            "checkpoint (source.storage), whose metadata holds the source pod",
        );
      }
      setPhase(status, "Importing", now);
      setCondition(conditions, {
        type: "Imported",
        status: "False",
        reason: "Importing",
        message: `Reading "${src.storage.key}" from class "${src.storage.storageClassName}"`,
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
      let pod: k8s.V1Pod;
      try {
        pod = await deps.core.readNamespacedPod({ name: status.restoredPodName!, namespace: ns });
      } catch (err) {
        if (apiStatus(err) === 404) {
          throw new RestoreFailure(
            "PodGone",
            `Restored pod "${ns}/${status.restoredPodName}" was deleted before it ran`,
          );
        }
        throw err;
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
  const { storageClassName, key } = pr.spec.source.storage!;
  const ns = pr.metadata!.namespace!;
  const cls = await deps.lpm.get<CheckpointStorageClass>(
    "checkpointstorageclasses",
    "",
    storageClassName,
  );
  if (!cls) {
    throw new RestoreFailure(
      "StorageClassNotFound",
      `CheckpointStorageClass "${storageClassName}" does not exist in this cluster: create one ` +
        "that points at the storage holding the checkpoint",
    );
  }
  if (!cls.spec.registry?.repository) {
    throw new RestoreFailure(
      "NoRegistry",
      `CheckpointStorageClass "${storageClassName}" has no registry: the checkpoint image ` +
        "must be imported into a registry this cluster's nodes can pull from",
    );
  }
  let secret: Record<string, string> | undefined;
  const ref = cls.spec.credentialsSecretRef;
  if (ref) {
    secret = decodeSecretData(
      await deps.core.readNamespacedSecret({ name: ref.name, namespace: ref.namespace }),
    );
  }
  const store = createStore(cls.spec, { secret });
  const work = await Deno.makeTempDir({ prefix: "lpm-restore-" });
  try {
    const mKey = metadataKey(key);
    let meta: CheckpointMetadata;
    try {
      meta = JSON.parse(await new Response(await store.get(mKey)).text());
    } catch (err) {
      throw new RestoreFailure(
        "MetadataUnavailable",
        `Cannot read checkpoint metadata "${mKey}" from class "${storageClassName}": ${
          (err as Error).message
        }`,
      );
    }
    const source = meta.sourcePod;
    if (!source?.spec?.containers?.length || !meta.container) {
      throw new RestoreFailure(
        "PodSpecUnavailable",
        `Checkpoint metadata "${mKey}" holds no source pod spec or container name`,
      );
    }
    const archiveKey = meta.archive?.key ?? mKey.replace(/\.checkpoint\.json$/, ".tar");
    const node = await pickNode(deps, pr.spec.nodeName);
    const why = incompatibility(meta, node);
    if (why) throw new RestoreFailure("Incompatible", why);

    // Download, verifying the sha256 the metadata recorded (the store also
    // checks its own digest while streaming).
    const archive = `${work}/${meta.container}.tar`;
    const f = await Deno.open(archive, { write: true, create: true, truncate: true });
    await (await store.get(archiveKey)).pipeTo(f.writable);
    const img = await buildCheckpointImage(archive, {
      containerName: meta.container,
      layoutDir: `${work}/layout`,
      source: { pod: meta.pod, namespace: meta.namespace, node: meta.node },
      runtime: meta.runtime,
    });
    const want = meta.archive?.sha256?.replace(/^sha256:/, "");
    const got = img.archiveDigest.replace(/^sha256:/, "");
    if (want && want !== got) {
      throw new RestoreFailure(
        "DigestMismatch",
        `Archive "${archiveKey}" has sha256 ${got} but its metadata records ${want}`,
      );
    }
    const tag = `restore-${pr.metadata?.uid?.replaceAll("-", "").slice(0, 12) ?? "x"}`;
    const reg = cls.spec.registry;
    let credentials: { username: string; password: string } | undefined;
    if (reg.credentialsSecretRef) {
      const s = decodeSecretData(
        await deps.core.readNamespacedSecret({
          name: reg.credentialsSecretRef.name,
          namespace: reg.credentialsSecretRef.namespace,
        }),
      );
      if (s.username) credentials = { username: s.username, password: s.password ?? "" };
    }
    const pushed = await pushImage(
      img,
      `${reg.repository}:${tag}`,
      {
        insecure: reg.insecure,
        ...(credentials ? { credentials } : {}),
      } as Parameters<typeof pushImage>[2],
    );
    const image = `${reg.repository}@${pushed.digest}`;
    log.info("checkpoint imported", { key: archiveKey, image });
    setCondition(conditions, {
      type: "Imported",
      status: "True",
      reason: "ImagePushed",
      message: `Archive "${archiveKey}" (sha256 ${got}) imported as "${image}"`,
    }, deps.now());

    const podName = pr.spec.podName ??
      `${(meta.pod ?? pr.metadata!.name!).slice(0, 50)}-r${
        (pr.metadata?.uid ?? "").replaceAll("-", "").slice(0, 6)
      }`;
    const pod = buildRestoredPod(source, {
      name: podName,
      targetNode: node.metadata!.name!,
      targetNodeLabels: node.metadata?.labels,
      images: { [meta.container]: image },
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
    store.close?.();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

async function pickNode(deps: ReconcilerDeps, name?: string): Promise<k8s.V1Node> {
  if (name) {
    try {
      return await deps.core.readNode({ name });
    } catch (err) {
      if (apiStatus(err) === 404) {
        throw new RestoreFailure("NodeNotFound", `Node "${name}" does not exist in this cluster`);
      }
      throw err;
    }
  }
  const ready = (await deps.core.listNode()).items.filter(nodeReady);
  if (!ready.length) throw new RestoreFailure("NoNode", "No Ready node in this cluster");
  return ready[0];
}
