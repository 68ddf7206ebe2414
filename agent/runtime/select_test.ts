import { assertEquals, assertThrows } from "@std/assert";
import { selectDriver } from "./select.ts";

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
