/**
 * Workloads the end-to-end tests run on the real nodes: the counter (a shell
 * loop printing 1, 2, 3...), its values read back from a pod's log, and the
 * body of a one-replica Deployment or ReplicaSet pinned to a node.
 * @module
 */
import type * as k8s from "@kubernetes/client-node";

/** The counter's command: `prefix` then 1, 2, 3... one line every `intervalS` seconds. */
export function counterCommand(intervalS = 0.3, prefix = ""): string[] {
  return ["sh", "-c", `i=0; while true; do i=$((i+1)); echo ${prefix}$i; sleep ${intervalS}; done`];
}

/** The counter values (lines `prefix` + digits) a container printed, in order. */
export async function counterValues(
  core: k8s.CoreV1Api,
  ns: string,
  pod: string,
  opts: { container?: string; prefix?: string } = {},
): Promise<number[]> {
  const prefix = opts.prefix ?? "";
  const log = await core.readNamespacedPodLog({
    name: pod,
    namespace: ns,
    ...(opts.container ? { container: opts.container } : {}),
  });
  return String(log).split("\n").map((l) => l.trim())
    .filter((l) => l.startsWith(prefix) && /^\d+$/.test(l.slice(prefix.length)))
    .map((l) => Number(l.slice(prefix.length)));
}

/** What {@linkcode pinnedReplicas} builds from. */
export interface PinnedReplicasOptions {
  /** Name of the object, and its `app` label (the selector). */
  app: string;
  /** The node its pods must run on (`kubernetes.io/hostname`). */
  node: string;
  /** The pods' containers. */
  containers: k8s.V1Container[];
  /** More of the pod spec (tolerations, automountServiceAccountToken...). */
  podSpec?: Omit<k8s.V1PodSpec, "containers" | "nodeSelector">;
}

/**
 * The body of a one-replica Deployment or ReplicaSet (the two share this
 * shape) whose pods, labelled `app=<app>`, run on `node`.
 */
export function pinnedReplicas(
  { app, node, containers, podSpec }: PinnedReplicasOptions,
): k8s.V1Deployment & k8s.V1ReplicaSet {
  return {
    metadata: { name: app },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app } },
      template: {
        metadata: { labels: { app } },
        spec: { nodeSelector: { "kubernetes.io/hostname": node }, ...podSpec, containers },
      },
    },
  };
}
