import { assertEquals, assertMatch } from "@std/assert";
import type * as k8s from "@kubernetes/client-node";
import {
  compareVersions,
  incompatibility,
  metadataKey,
  runtimeKind,
} from "./pod_restore_compat.ts";

const node = (arch: string, runtime: string): k8s.V1Node => ({
  metadata: { name: "node-a" },
  status: {
    nodeInfo: {
      architecture: arch,
      containerRuntimeVersion: runtime,
    } as k8s.V1NodeSystemInfo,
  },
});

Deno.test("a checkpoint fits a node of the same architecture and runtime", () => {
  const meta = { runtime: { name: "kubelet", criuVersion: "4.1.1" } };
  assertEquals(incompatibility(meta, node("amd64", "containerd://2.2.9")), undefined);
  assertEquals(incompatibility(meta, node("amd64", "cri-o://1.30.0")), undefined);
});

Deno.test("another architecture is refused with both names", () => {
  const why = incompatibility(
    { architecture: "arm64", runtime: { name: "kubelet" } },
    node("amd64", "containerd://2.2.9"),
  );
  assertMatch(why!, /architecture "arm64" but node "node-a" is "amd64"/);
});

Deno.test("a Docker checkpoint is refused on a containerd node", () => {
  const why = incompatibility({ runtime: { name: "docker" } }, node("amd64", "containerd://2.2.9"));
  assertMatch(why!, /runtime "docker" but node "node-a" runs "containerd:\/\/2.2.9"/);
});

Deno.test("an older CRIU on the node is refused", () => {
  const meta = { runtime: { name: "kubelet", criuVersion: "4.1.1" } };
  assertMatch(incompatibility(meta, node("amd64", "containerd://2.2.9"), "3.19")!, /CRIU 4.1.1/);
  assertEquals(incompatibility(meta, node("amd64", "containerd://2.2.9"), "4.1.1"), undefined);
});

Deno.test("versions, runtime kinds and metadata keys", () => {
  assertEquals(compareVersions("4.1.1", "4.1"), 1);
  assertEquals(compareVersions("v3.19", "4.0"), -1);
  assertEquals(runtimeKind("containerd://2.2.9"), "containerd");
  assertEquals(metadataKey("ns/p/op/app.tar"), "ns/p/op/app.checkpoint.json");
  assertEquals(metadataKey("ns/p/op/app.checkpoint.json"), "ns/p/op/app.checkpoint.json");
});
