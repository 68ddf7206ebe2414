import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import type * as k8s from "@kubernetes/client-node";
import {
  buildRestoredPod,
  MIGRATION_LABEL,
  nodeReady,
  restoredPodName,
  runtimeSupport,
  schedulingMismatch,
  unsupportedReason,
  volumeInitContainers,
} from "./restored_pod.ts";

const source: k8s.V1Pod = {
  metadata: {
    name: "web-7d9f8-abcde",
    namespace: "shop",
    labels: { app: "web", "pod-template-hash": "7d9f8" },
    annotations: { team: "a", "controller.kubernetes.io/pod-deletion-cost": "-100" },
    ownerReferences: [{
      apiVersion: "apps/v1",
      kind: "ReplicaSet",
      name: "web-7d9f8",
      uid: "u1",
      controller: true,
    }],
  },
  spec: {
    nodeName: "node-a",
    serviceAccountName: "web",
    initContainers: [{ name: "init", image: "busybox", command: ["true"] }],
    containers: [
      { name: "app", image: "web:1", env: [{ name: "A", value: "1" }] },
      { name: "sidecar", image: "side:1" },
    ],
    tolerations: [{ key: "dedicated", operator: "Equal", value: "web", effect: "NoSchedule" }],
    affinity: { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [] } },
    dnsConfig: { nameservers: ["1.2.3.4"] },
    imagePullSecrets: [{ name: "regcred" }],
    securityContext: { runAsUser: 1000 },
    volumes: [{ name: "cfg", configMap: { name: "web" } }],
  },
};

Deno.test("buildRestoredPod keeps the source spec, pins the target node and swaps in checkpoint images", () => {
  const pod = buildRestoredPod(source, {
    name: "web-7d9f8-abcde-m123456",
    targetNode: "node-b",
    images: { app: "reg/ckpt@sha256:aa", sidecar: "reg/ckpt@sha256:bb" },
    migrationName: "move-web",
  });
  assertEquals(pod.spec?.nodeName, "node-b");
  assertEquals(pod.spec?.containers.map((c) => c.image), [
    "reg/ckpt@sha256:aa",
    "reg/ckpt@sha256:bb",
  ]);
  assertEquals(pod.spec?.containers[0].env, [{ name: "A", value: "1" }]);
  assertEquals(
    pod.spec?.initContainers?.[0].image,
    "busybox",
    "init containers are kept as they were",
  );
  for (
    const k of [
      "serviceAccountName",
      "tolerations",
      "affinity",
      "dnsConfig",
      "imagePullSecrets",
      "securityContext",
      "volumes",
    ] as const
  ) {
    assertEquals(pod.spec?.[k], source.spec?.[k], k);
  }
  assertEquals(pod.metadata?.labels?.app, "web");
  assertEquals(pod.metadata?.labels?.[MIGRATION_LABEL], "move-web");
  assertEquals(pod.metadata?.annotations?.team, "a");
  assertEquals(
    pod.metadata?.annotations?.["controller.kubernetes.io/pod-deletion-cost"],
    undefined,
  );
  assertEquals(source.spec?.nodeName, "node-a", "the source object is not modified");
  assertEquals(pod.metadata?.ownerReferences?.[0].kind, "ReplicaSet");
});

Deno.test("buildRestoredPod withholds selector labels and owner for later adoption", () => {
  const pod = buildRestoredPod(source, {
    name: "x",
    targetNode: "node-b",
    images: {},
    migrationName: "m",
    withheldLabels: ["app", "pod-template-hash"],
  });
  assertEquals(pod.metadata?.labels, { [MIGRATION_LABEL]: "m" });
  assertEquals(pod.metadata?.ownerReferences, undefined);
});

Deno.test("restoredPodName is DNS-safe, at most 63 characters, and stable", () => {
  const n = restoredPodName("a".repeat(80), "0f1e2d3c-aaaa-bbbb");
  assert(n.length <= 63);
  assertMatch(n, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  assertEquals(n, restoredPodName("a".repeat(80), "0f1e2d3c-aaaa-bbbb"));
  assertEquals(restoredPodName("counter", "0f1e2d3c-x"), "counter-m0f1e2d");
});

Deno.test("unsupportedReason refuses StatefulSet pods and hostPath volumes, naming them", () => {
  const sts = structuredClone(source);
  sts.metadata!.ownerReferences = [{
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    name: "db",
    uid: "u",
    controller: true,
  }];
  assertStringIncludes(unsupportedReason(sts)!, 'StatefulSet "db"');
  const hp = structuredClone(source);
  hp.spec!.volumes = [{ name: "data", hostPath: { path: "/srv" } }];
  assertStringIncludes(unsupportedReason(hp)!, 'Volume "data" is a hostPath');
  // emptyDirs move: their contents travel with the checkpoint.
  const ed = structuredClone(source);
  ed.spec!.volumes = [{ name: "scratch", emptyDir: {} }];
  assertEquals(unsupportedReason(ed), undefined);
  const mem = structuredClone(source);
  mem.spec!.volumes = [{ name: "shm", emptyDir: { medium: "Memory" } }];
  assertEquals(unsupportedReason(mem), undefined);
  assertEquals(unsupportedReason(source), undefined);
});

Deno.test("runtimeSupport knows which runtimes can checkpoint", () => {
  const node = (v: string): k8s.V1Node => ({
    status: { nodeInfo: { containerRuntimeVersion: v } as k8s.V1NodeSystemInfo },
  });
  assert(runtimeSupport(node("containerd://2.2.9")).ok);
  assert(runtimeSupport(node("cri-o://1.34.2")).ok);
  assert(!runtimeSupport(node("containerd://1.7.24")).ok);
  assertStringIncludes(runtimeSupport(node("containerd://1.7.24")).reason!, "2.0+");
  assert(!runtimeSupport(node("")).ok);
  assert(nodeReady({ status: { conditions: [{ type: "Ready", status: "True" }] } }));
  assert(!nodeReady({ status: { conditions: [{ type: "Ready", status: "False" }] } }));
});

Deno.test("buildRestoredPod moves hostname pins to the target; schedulingMismatch checks the rest", () => {
  const pinned = structuredClone(source);
  pinned.spec!.nodeSelector = { "kubernetes.io/hostname": "node-a", disk: "ssd" };
  pinned.spec!.affinity = {
    nodeAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [{
          matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: ["node-a"] }],
        }],
      },
    },
  };
  const pod = buildRestoredPod(pinned, {
    name: "x",
    targetNode: "node-b",
    targetNodeLabels: { "kubernetes.io/hostname": "node-b" },
    images: {},
    migrationName: "m",
  });
  assertEquals(pod.spec?.nodeSelector, { "kubernetes.io/hostname": "node-b", disk: "ssd" });
  assertEquals(
    pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution,
    undefined,
  );
  const node = (labels: Record<string, string>): k8s.V1Node => ({
    metadata: { name: "node-b", labels },
  });
  assertStringIncludes(schedulingMismatch(pinned, node({}))!, "disk=ssd");
  assertEquals(schedulingMismatch(pinned, node({ disk: "ssd" })), undefined);
  const zoned = structuredClone(source);
  zoned.spec!.affinity = {
    nodeAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [{
          matchExpressions: [{ key: "zone", operator: "In", values: ["z1"] }],
        }],
      },
    },
  };
  assertStringIncludes(schedulingMismatch(zoned, node({ zone: "z2" }))!, "required node affinity");
  assertEquals(schedulingMismatch(zoned, node({ zone: "z1" })), undefined);
});

Deno.test("carried emptyDirs: an init container per carrying container, after the pod's own", () => {
  const src = structuredClone(source);
  src.spec!.volumes = [{ name: "scratch", emptyDir: {} }, { name: "shm", emptyDir: {} }];
  src.spec!.containers[0].resources = { requests: { cpu: "100m" }, limits: { cpu: "100m" } };
  const img = `reg/lpm/cp@sha256:${"a".repeat(64)}`;
  const pod = buildRestoredPod(src, {
    name: "web-m1",
    targetNode: "node-b",
    images: { app: "cp-app", sidecar: "cp-side" },
    volumes: {
      app: { names: ["scratch"], image: img, size: 10 },
      sidecar: { names: ["shm"], image: img, size: 5 },
    },
    migrationName: "m",
  });
  const init = pod.spec!.initContainers!;
  assertEquals(init.map((c) => c.name), ["init", "lpm-restore-volumes", "lpm-restore-volumes-2"]);
  assertEquals(init[1].image, img);
  assertEquals(init[1].command, ["/lpm/busybox", "cp", "-a", "/lpm-volumes/.", "/lpm-mnt/"]);
  assertEquals(init[1].volumeMounts, [{ name: "scratch", mountPath: "/lpm-mnt/scratch" }]);
  // Same resources as the carrying container: the QoS class does not change.
  assertEquals(init[1].resources, src.spec!.containers[0].resources);
  assertEquals(init[2].volumeMounts, [{ name: "shm", mountPath: "/lpm-mnt/shm" }]);
  assertEquals(volumeInitContainers(src.spec!, {}), []);
});
