import { assertEquals, assertThrows } from "@std/assert";
import { portablePod } from "./pod_spec.ts";

Deno.test("portablePod keeps metadata and spec, drops what belongs to the source copy", () => {
  const pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "counter",
      namespace: "apps",
      uid: "1234",
      resourceVersion: "42",
      managedFields: [{ manager: "kubectl" }],
      labels: { app: "counter" },
      annotations: {
        "kubectl.kubernetes.io/last-applied-configuration": "{...}",
        "team": "sre",
      },
    },
    spec: { containers: [{ name: "c", image: "busybox" }], nodeName: "node-a" },
    status: { phase: "Running" },
  };
  assertEquals(portablePod(JSON.stringify(pod)), {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "counter",
      namespace: "apps",
      labels: { app: "counter" },
      annotations: { team: "sre" },
    },
    spec: { containers: [{ name: "c", image: "busybox" }], nodeName: "node-a" },
  });
});

Deno.test("portablePod: nothing in, nothing out; a non-object is an error", () => {
  assertEquals(portablePod(undefined), undefined);
  assertEquals(portablePod(""), undefined);
  assertThrows(() => portablePod("[1]"), Error, "not an object");
});
