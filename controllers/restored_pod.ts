/**
 * The pod that a migration creates on the target node: the source pod's
 * spec, all of it (init containers, volumes, tolerations, affinity, DNS,
 * service account, security context, pull secrets...), pinned to the target
 * node, with each checkpointed container's image replaced by its checkpoint
 * image. Pure functions: no API calls here.
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import type { CarriedVolumes } from "../api/mod.ts";
import { VOLUME_IMAGE, VOLUME_INIT_CONTAINER, volumeImageCommand } from "../oci/mod.ts";

/** Label put on a restored pod: the PodMigration that made it. */
export const MIGRATION_LABEL = "lpm.my.domain/migration";
/** Annotation on a restored pod: the pod it was restored from. */
export const RESTORED_FROM_ANNOTATION = "lpm.my.domain/restored-from";
/** Annotation Kubernetes' ReplicaSet controller reads to pick pods to delete. */
export const DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost";

const HOSTNAME = "kubernetes.io/hostname";

/** Options for {@linkcode buildRestoredPod}. */
export interface RestoredPodOptions {
  /** Name of the new pod. */
  name: string;
  /** Node to run on. */
  targetNode: string;
  /** The target node's labels (to re-target hostname pins). */
  targetNodeLabels?: Record<string, string>;
  /** Checkpoint image per container name. */
  images: Record<string, string>;
  /** emptyDir volumes carried with the checkpoint, per container that carried them. */
  volumes?: Record<string, CarriedVolumes>;
  /** The PodMigration's name (label). */
  migrationName: string;
  /**
   * Labels to hold back until the restored pod runs: for pods owned by a
   * ReplicaSet these are the selector's labels, so the owner adopts the pod
   * only once it is Running (an owner that saw a Pending extra replica
   * would scale down the new pod, not the old one).
   */
  withheldLabels?: string[];
}

/** A deterministic, DNS-safe name for the restored pod (≤ 63 chars). */
export function restoredPodName(sourceName: string, migrationUid: string): string {
  const suffix = `-m${migrationUid.replaceAll("-", "").slice(0, 6)}`;
  return sourceName.slice(0, 63 - suffix.length).replace(/[-.]+$/, "") + suffix;
}

/** Builds the restored pod from the source pod. */
export function buildRestoredPod(source: k8s.V1Pod, opts: RestoredPodOptions): k8s.V1Pod {
  const spec = structuredClone(source.spec!) as k8s.V1PodSpec;
  spec.nodeName = opts.targetNode;
  // Scheduling already happened: the pod is bound to the target at creation.
  delete spec.schedulingGates;
  retarget(spec, opts.targetNodeLabels?.[HOSTNAME] ?? opts.targetNode);
  for (const c of spec.containers) {
    const img = opts.images[c.name];
    if (img) {
      c.image = img;
      // A checkpoint image is immutable and addressed by digest: pull only when missing.
      c.imagePullPolicy = "IfNotPresent";
    }
  }
  const init = volumeInitContainers(spec, opts.volumes ?? {});
  if (init.length) spec.initContainers = [...(spec.initContainers ?? []), ...init];
  // The projected service-account token volume is re-created by the API server
  // for the new pod; a copied one would name the old pod's generated volume.
  const labels = { ...source.metadata?.labels };
  for (const l of opts.withheldLabels ?? []) delete labels[l];
  labels[MIGRATION_LABEL] = opts.migrationName;
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries(source.metadata?.annotations ?? {})) {
    if (k === DELETION_COST_ANNOTATION || k.startsWith("kubectl.kubernetes.io/last-applied")) {
      continue;
    }
    annotations[k] = v;
  }
  annotations[RESTORED_FROM_ANNOTATION] = `${source.metadata?.namespace}/${source.metadata?.name}`;
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: opts.name,
      namespace: source.metadata?.namespace,
      labels,
      annotations,
      // Owner references come later, by adoption, for controller-owned pods.
      ownerReferences: opts.withheldLabels?.length ? undefined : source.metadata?.ownerReferences,
    },
    spec,
  };
}

/**
 * Init containers that copy carried emptyDir contents into the restored
 * pod's emptyDirs. They run after the source's own init containers (which
 * run again on the target) and before the checkpointed containers are
 * restored, whose open files must exist with their dumped sizes. Each gets
 * the resources of the container that carried its volumes, so the pod's QoS
 * class stays the same; security settings are the pod's.
 */
export function volumeInitContainers(
  spec: k8s.V1PodSpec,
  volumes: Record<string, CarriedVolumes>,
): k8s.V1Container[] {
  const out: k8s.V1Container[] = [];
  for (const c of spec.containers) {
    const v = volumes[c.name];
    if (!v?.names.length) continue;
    const name = out.length ? `${VOLUME_INIT_CONTAINER}-${out.length + 1}` : VOLUME_INIT_CONTAINER;
    out.push({
      name,
      image: v.image,
      imagePullPolicy: "IfNotPresent",
      command: volumeImageCommand(),
      volumeMounts: v.names.map((n) => ({ name: n, mountPath: `${VOLUME_IMAGE.mountDir}/${n}` })),
      ...(c.resources ? { resources: structuredClone(c.resources) } : {}),
    });
  }
  return out;
}

/** The controller owner reference of a pod, if any. */
export function controllerOf(pod: k8s.V1Pod): k8s.V1OwnerReference | undefined {
  return pod.metadata?.ownerReferences?.find((o) => o.controller);
}

/** Why a pod cannot be migrated yet, or undefined when it can. */
export function unsupportedReason(pod: k8s.V1Pod): string | undefined {
  const owner = controllerOf(pod);
  if (owner && owner.kind === "StatefulSet") {
    return `Pod "${pod.metadata?.namespace}/${pod.metadata?.name}" is owned by StatefulSet "${owner.name}": ` +
      "StatefulSet pods need a stable identity and are not supported yet";
  }
  if (owner && owner.kind === "DaemonSet") {
    return `Pod "${pod.metadata?.namespace}/${pod.metadata?.name}" is owned by DaemonSet "${owner.name}": ` +
      "a DaemonSet pod belongs to its node and cannot move";
  }
  for (const v of pod.spec?.volumes ?? []) {
    if (v.hostPath) {
      return `Volume "${v.name}" is a hostPath: node-local data does not move with the pod`;
    }
  }
  return undefined;
}

/** True when the node reports Ready=True. */
export function nodeReady(node: k8s.V1Node): boolean {
  return node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

/** Checkpointing runtimes and the reason a runtime is refused. */
export function runtimeSupport(
  node: k8s.V1Node,
): { ok: boolean; runtime: string; reason?: string } {
  const runtime = node.status?.nodeInfo?.containerRuntimeVersion ?? "";
  const m = /^([a-z-]+):\/\/v?(\d+)\.(\d+)/.exec(runtime);
  if (!m) return { ok: false, runtime, reason: `Node runtime "${runtime}" is not recognised` };
  const [, name, major] = m;
  if (name === "cri-o" || name === "docker") return { ok: true, runtime };
  if (name === "containerd" && Number(major) >= 2) return { ok: true, runtime };
  if (name === "containerd") {
    return {
      ok: false,
      runtime,
      reason: `containerd ${m[2]}.${m[3]} cannot checkpoint through the kubelet (2.0+ needed)`,
    };
  }
  return { ok: false, runtime, reason: `Runtime "${name}" has no checkpoint support lpm knows of` };
}

/**
 * Moves hostname pins to the target: the kubelet re-checks a bound pod's
 * nodeSelector and required node affinity, so a pod pinned to the source's
 * hostname would be rejected on the target. Other constraints are kept (and
 * checked beforehand by {@linkcode schedulingMismatch}).
 */
function retarget(spec: k8s.V1PodSpec, targetHostname: string): void {
  if (spec.nodeSelector?.[HOSTNAME] !== undefined) spec.nodeSelector[HOSTNAME] = targetHostname;
  const req = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  if (!req) return;
  const terms = req.nodeSelectorTerms
    .map((t) => ({
      ...t,
      matchExpressions: t.matchExpressions?.filter((e) => e.key !== HOSTNAME),
      matchFields: t.matchFields?.filter((f) => f.key !== "metadata.name"),
    }))
    // An empty term matches no node: drop terms that only pinned a host.
    .filter((t) => (t.matchExpressions?.length ?? 0) + (t.matchFields?.length ?? 0) > 0);
  if (terms.length) req.nodeSelectorTerms = terms;
  else delete spec.affinity!.nodeAffinity!.requiredDuringSchedulingIgnoredDuringExecution;
}

function exprMatches(e: k8s.V1NodeSelectorRequirement, labels: Record<string, string>): boolean {
  const v = labels[e.key];
  switch (e.operator) {
    case "In":
      return v !== undefined && (e.values ?? []).includes(v);
    case "NotIn":
      return v === undefined || !(e.values ?? []).includes(v);
    case "Exists":
      return v !== undefined;
    case "DoesNotExist":
      return v === undefined;
    case "Gt":
      return v !== undefined && Number(v) > Number(e.values?.[0]);
    case "Lt":
      return v !== undefined && Number(v) < Number(e.values?.[0]);
    default:
      return false;
  }
}

/**
 * Why the target node does not satisfy the pod's nodeSelector or required
 * node affinity (hostname pins aside), or undefined when it does.
 */
export function schedulingMismatch(pod: k8s.V1Pod, node: k8s.V1Node): string | undefined {
  const labels = node.metadata?.labels ?? {};
  const name = node.metadata?.name;
  for (const [k, v] of Object.entries(pod.spec?.nodeSelector ?? {})) {
    if (k === HOSTNAME) continue;
    if (labels[k] !== v) {
      return `Node "${name}" lacks label ${k}=${v} that the pod's nodeSelector requires`;
    }
  }
  const spec = structuredClone(pod.spec ?? { containers: [] }) as k8s.V1PodSpec;
  retarget(spec, labels[HOSTNAME] ?? name ?? "");
  const terms = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution
    ?.nodeSelectorTerms;
  if (
    terms?.length &&
    !terms.some((t) => (t.matchExpressions ?? []).every((e) => exprMatches(e, labels)))
  ) {
    return `Node "${name}" matches none of the pod's required node affinity terms`;
  }
  return undefined;
}
