import { assertEquals, assertThrows } from "@std/assert";
import { checkpointAnnotations, describeCheckpointImage, LPM } from "./annotations.ts";
import { hostArchitecture } from "./platform.ts";

Deno.test("a checkpoint image describes itself: annotations read back", () => {
  const pod = { metadata: { name: "counter" }, spec: { containers: [{ name: "app" }] } };
  const a = checkpointAnnotations({
    containerName: "app",
    pod: "counter",
    namespace: "apps",
    node: "node-a",
    engine: "containerd",
    engineVersion: "2.2.9",
    criuVersion: "4.1.1",
    architecture: "arm64",
    podSpec: JSON.stringify(pod),
    archiveSha256: "ab".repeat(32),
    compression: "none",
  });
  assertEquals(describeCheckpointImage(a), {
    containerName: "app",
    pod: "counter",
    namespace: "apps",
    node: "node-a",
    architecture: "arm64",
    runtime: { name: "containerd", version: "2.2.9", criuVersion: "4.1.1" },
    archiveSha256: "ab".repeat(32),
    sourcePod: pod,
  });
});

Deno.test("the architecture defaults to this host's, in GOARCH names", () => {
  const a = checkpointAnnotations({ containerName: "app" });
  assertEquals(describeCheckpointImage(a).architecture, hostArchitecture());
  assertEquals(hostArchitecture("x86_64"), "amd64");
  assertEquals(hostArchitecture("aarch64"), "arm64");
});

Deno.test("CRI-O's annotations are understood; a bad pod spec names the annotation", () => {
  const d = describeCheckpointImage({
    "io.kubernetes.cri-o.annotations.checkpoint.name": "web",
    "io.kubernetes.cri-o.annotations.checkpoint.criu.version": "3.19",
  });
  assertEquals(d.containerName, "web");
  assertEquals(d.runtime.criuVersion, "3.19");
  assertEquals(d.sourcePod, undefined);
  assertThrows(() => describeCheckpointImage({ [LPM.podSpec]: "{" }), Error, LPM.podSpec);
  assertThrows(() => describeCheckpointImage({ [LPM.podSpec]: "[]" }), Error, "not a JSON object");
});
