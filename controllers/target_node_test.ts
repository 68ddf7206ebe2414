import type * as k8s from "@kubernetes/client-node";
import { assertEquals, assertStringIncludes } from "@std/assert";
import { chooseTargetNode, parseQuantity, podRequests, tolerates } from "./target_node.ts";

function node(name: string, extra: Partial<k8s.V1Node> & { cpu?: string } = {}): k8s.V1Node {
  return {
    metadata: { name, labels: { "kubernetes.io/hostname": name, ...extra.metadata?.labels } },
    spec: extra.spec ?? {},
    status: {
      allocatable: { cpu: extra.cpu ?? "2", memory: "4Gi", pods: "110" },
      conditions: [{ type: "Ready", status: "True" }],
      nodeInfo: { containerRuntimeVersion: "containerd://2.2.9" } as k8s.V1NodeSystemInfo,
    },
  };
}

function pod(spec: Partial<k8s.V1PodSpec> = {}, nodeName = "node-a"): k8s.V1Pod {
  return {
    metadata: { name: "counter", namespace: "default" },
    spec: {
      nodeName,
      containers: [{ name: "c", resources: { requests: { cpu: "500m", memory: "256Mi" } } }],
      ...spec,
    },
    status: { phase: "Running" },
  };
}

Deno.test("parseQuantity reads the suffixes Kubernetes writes", () => {
  assertEquals(parseQuantity("250m"), 0.25);
  assertEquals(parseQuantity("64Mi"), 64 * 2 ** 20);
  assertEquals(parseQuantity("1G"), 1e9);
  assertEquals(parseQuantity("2"), 2);
  assertEquals(parseQuantity("1e3"), 1000);
  assertEquals(Number.isNaN(parseQuantity("1Q")), true);
});

Deno.test("podRequests: containers summed, an init container alone, overhead added", () => {
  const r = podRequests(pod({
    initContainers: [{ name: "i", resources: { requests: { cpu: "1", memory: "1Mi" } } }],
    overhead: { cpu: "100m" },
  }));
  assertEquals(r.cpu, 1.1);
  assertEquals(r.memory, 256 * 2 ** 20);
});

Deno.test("tolerates: Exists without key, key and value, effect", () => {
  const taint = { key: "k", value: "v", effect: "NoSchedule" };
  assertEquals(tolerates([{ operator: "Exists" }], taint), true);
  assertEquals(tolerates([{ key: "k", value: "v" }], taint), true);
  assertEquals(tolerates([{ key: "k", value: "w" }], taint), false);
  assertEquals(tolerates([{ key: "k", operator: "Exists", effect: "NoExecute" }], taint), false);
});

Deno.test("chooseTargetNode: the only node that fits, and why the others do not", () => {
  const nodes = [
    node("node-a"),
    node("node-b"),
    node("node-c", { spec: { unschedulable: true } }),
    node("node-d", { spec: { taints: [{ key: "gpu", effect: "NoSchedule" }] } }),
    node("node-e", { cpu: "400m" }),
    node("node-f", { metadata: { labels: { zone: "x" } } }),
  ];
  const p = pod({ nodeSelector: { "kubernetes.io/hostname": "node-a" } });
  const choice = chooseTargetNode(p, nodes, [p]);
  // node-f fits too and has as much free: the first by name wins a tie.
  assertEquals(choice.node?.metadata?.name, "node-b");
  const why = choice.refusals.join("\n");
  assertStringIncludes(why, "node-a: it is the source node");
  assertStringIncludes(why, "node-c: cordoned");
  assertStringIncludes(why, "node-d: taint gpu:NoSchedule is not tolerated");
  assertStringIncludes(why, "node-e: insufficient cpu: the pod requests 500m, 400m is free");
});

Deno.test("chooseTargetNode: requests already on a node count; no fit names every node", () => {
  const p = pod({ nodeSelector: { zone: "x" } });
  const busy = pod({}, "node-b");
  busy.spec!.containers[0].resources!.requests!.cpu = "1800m";
  const choice = chooseTargetNode(
    p,
    [node("node-a"), node("node-b", { metadata: { labels: { zone: "x" } } }), node("node-c")],
    [p, busy],
  );
  assertEquals(choice.node, undefined);
  assertEquals(choice.refusals, [
    "node-a: it is the source node",
    "node-b: insufficient cpu: the pod requests 500m, 200m is free",
    "node-c: lacks label zone=x that the pod's nodeSelector requires",
  ]);
});
