/**
 * Choosing a target node when a PodMigration names none: the scheduler's
 * basic filters (NodeUnschedulable, NodeName/NodeAffinity, TaintToleration,
 * NodeResourcesFit), plus lpm's own: not the source, Ready, a runtime that
 * can restore a checkpoint. Among the nodes that pass, the one with the most
 * CPU then memory left after the pod's requests wins, a simple stand-in for
 * the scheduler's LeastAllocated score. Pure functions: no API calls here.
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import { nodeReady, runtimeSupport, schedulingMismatch } from "./restored_pod.ts";

/** The outcome of {@linkcode chooseTargetNode}: a node, or why each node was refused. */
export type TargetChoice =
  | { node: k8s.V1Node; refusals: string[] }
  | { node?: undefined; refusals: string[] };

/** Resources the fit counts, in base units (cores, bytes, pods). */
type Resources = Record<"cpu" | "memory" | "pods", number>;

const SUFFIX: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** A Kubernetes quantity ("250m", "64Mi", "1.5G", "1e3") as a number; NaN when malformed. */
export function parseQuantity(q: string | number | undefined): number {
  if (q === undefined) return 0;
  if (typeof q === "number") return q;
  const m = /^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$/.exec(q.trim());
  if (!m || !(m[2] in SUFFIX)) return NaN;
  return Number(m[1]) * SUFFIX[m[2]];
}

/**
 * What a pod asks for, as the scheduler computes it: the larger of the sum
 * over its containers and each init container alone, plus its overhead.
 */
export function podRequests(pod: k8s.V1Pod): Resources {
  const sum: Resources = { cpu: 0, memory: 0, pods: 1 };
  const req = (c: k8s.V1Container, r: "cpu" | "memory") =>
    parseQuantity(c.resources?.requests?.[r] as string | undefined) || 0;
  for (const c of pod.spec?.containers ?? []) {
    sum.cpu += req(c, "cpu");
    sum.memory += req(c, "memory");
  }
  for (const c of pod.spec?.initContainers ?? []) {
    sum.cpu = Math.max(sum.cpu, req(c, "cpu"));
    sum.memory = Math.max(sum.memory, req(c, "memory"));
  }
  const overhead = pod.spec?.overhead as Record<string, string> | undefined;
  sum.cpu += parseQuantity(overhead?.cpu) || 0;
  sum.memory += parseQuantity(overhead?.memory) || 0;
  return sum;
}

/** True when a toleration of the pod tolerates `taint` (the scheduler's rules). */
export function tolerates(tolerations: k8s.V1Toleration[], taint: k8s.V1Taint): boolean {
  return tolerations.some((t) => {
    if (t.effect && t.effect !== taint.effect) return false;
    if (!t.key) return t.operator === "Exists";
    if (t.key !== taint.key) return false;
    return t.operator === "Exists" || (t.value ?? "") === (taint.value ?? "");
  });
}

/** The first NoSchedule/NoExecute taint of `node` the pod does not tolerate. */
export function untoleratedTaint(pod: k8s.V1Pod, node: k8s.V1Node): k8s.V1Taint | undefined {
  const tolerations = pod.spec?.tolerations ?? [];
  return (node.spec?.taints ?? []).find((t) =>
    (t.effect === "NoSchedule" || t.effect === "NoExecute") && !tolerates(tolerations, t)
  );
}

/** Pods that hold resources on a node: bound there and not finished. */
function holding(pod: k8s.V1Pod, node: string): boolean {
  return pod.spec?.nodeName === node && pod.status?.phase !== "Succeeded" &&
    pod.status?.phase !== "Failed";
}

/** What is left of `node`'s allocatable after the pods bound to it. */
export function freeResources(node: k8s.V1Node, pods: k8s.V1Pod[]): Resources {
  const alloc = (node.status?.allocatable ?? {}) as Record<string, string>;
  const free: Resources = {
    cpu: parseQuantity(alloc.cpu ?? "0") || 0,
    memory: parseQuantity(alloc.memory ?? "0") || 0,
    pods: parseQuantity(alloc.pods ?? "110") || 0,
  };
  for (const p of pods) {
    if (!holding(p, node.metadata?.name ?? "")) continue;
    const r = podRequests(p);
    free.cpu -= r.cpu;
    free.memory -= r.memory;
    free.pods -= r.pods;
  }
  return free;
}

const UNITS: Record<keyof Resources, (n: number) => string> = {
  cpu: (n) => `${Math.round(n * 1000)}m`,
  memory: (n) => `${Math.round(n / 2 ** 20)}Mi`,
  pods: (n) => `${n}`,
};

/** Why `node` cannot take `pod`, or undefined when it can. */
export function refusal(
  pod: k8s.V1Pod,
  node: k8s.V1Node,
  free: Resources,
): string | undefined {
  if (node.metadata?.name === pod.spec?.nodeName) return "it is the source node";
  if (!nodeReady(node)) return "not Ready";
  if (node.spec?.unschedulable) return "cordoned (unschedulable)";
  const rt = runtimeSupport(node);
  if (!rt.ok) return rt.reason;
  const mismatch = schedulingMismatch(pod, node);
  if (mismatch) return mismatch.replace(/^Node "[^"]*" /, "");
  const taint = untoleratedTaint(pod, node);
  if (taint) {
    return `taint ${taint.key}${taint.value ? `=${taint.value}` : ""}:${taint.effect} ` +
      "is not tolerated by the pod";
  }
  const want = podRequests(pod);
  for (const r of ["cpu", "memory", "pods"] as const) {
    if (want[r] > free[r]) {
      return `insufficient ${r}: the pod requests ${UNITS[r](want[r])}, ` +
        `${UNITS[r](Math.max(0, free[r]))} is free`;
    }
  }
  return undefined;
}

/**
 * The node a pod moves to when its migration names none. Every refused node
 * is in `refusals` as `"<node>: <why>"`; `pods` are all pods (those bound to
 * a node count against its allocatable).
 */
export function chooseTargetNode(
  pod: k8s.V1Pod,
  nodes: k8s.V1Node[],
  pods: k8s.V1Pod[],
): TargetChoice {
  const refusals: string[] = [];
  let best: { node: k8s.V1Node; free: Resources } | undefined;
  const sorted = [...nodes].sort((a, b) =>
    (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? "")
  );
  for (const node of sorted) {
    const free = freeResources(node, pods);
    const why = refusal(pod, node, free);
    if (why) {
      refusals.push(`${node.metadata?.name}: ${why}`);
      continue;
    }
    if (
      !best || free.cpu > best.free.cpu ||
      (free.cpu === best.free.cpu && free.memory > best.free.memory)
    ) {
      best = { node, free };
    }
  }
  return best ? { node: best.node, refusals } : { refusals };
}
