import { assertEquals, assertThrows } from "@std/assert";
import { selectDriver } from "./select.ts";
import { kubeletHint } from "./kubelet.ts";

Deno.test("select: containerd and cri-o use the kubelet, docker uses docker, override wins", () => {
  assertEquals(selectDriver({ containerRuntimeVersion: "containerd://2.2.9" }).driver, "kubelet");
  assertEquals(selectDriver({ containerRuntimeVersion: "cri-o://1.31.0" }).driver, "kubelet");
  assertEquals(selectDriver({ containerRuntimeVersion: "docker://20.10.24" }).driver, "docker");
  assertEquals(selectDriver({ dockerSocket: "/run/docker.sock" }).driver, "docker");
  assertEquals(
    selectDriver({ containerRuntimeVersion: "containerd://2.2.9", override: "docker" }).driver,
    "docker",
  );
  assertThrows(() => selectDriver({ containerRuntimeVersion: "rkt://1" }), Error, "--runtime");
});

Deno.test("kubelet hints: 404 route vs missing pod, RBAC, runtime", () => {
  assertEquals(
    kubeletHint(404, "404 page not found"),
    "feature gate ContainerCheckpoint off or runtime without checkpoint support?",
  );
  assertEquals(
    kubeletHint(404, "container nope does not exist"),
    "the pod or container does not exist on this node",
  );
  assertEquals(kubeletHint(403).includes("nodes/checkpoint"), true);
  assertEquals(kubeletHint(500), "the container runtime failed the checkpoint");
});
