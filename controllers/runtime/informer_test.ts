import { assertEquals } from "@std/assert";
import { type KubeObject, trim } from "./informer.ts";

Deno.test("trim: managedFields never enter the cache; everything else stays", () => {
  const pod: KubeObject = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "p",
      labels: { a: "b" },
      managedFields: [{ manager: "kubectl", operation: "Apply" }],
    },
  };
  assertEquals(trim(pod), {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "p", labels: { a: "b" } },
  });
  assertEquals(trim({ kind: "X" } as KubeObject), { kind: "X" });
});
