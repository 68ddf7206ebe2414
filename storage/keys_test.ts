import { assertEquals } from "@std/assert";
import { checkpointKey, keyProblem, parseCheckpointKey, podPrefix } from "./keys.ts";

Deno.test("checkpoint keys round trip and share the pod prefix", () => {
  const parts = {
    namespace: "default",
    pod: "counter",
    checkpointId: "20240101T000000Z-ab12",
    file: "app/archive.tar",
  };
  const key = checkpointKey(parts);
  assertEquals(key, "default/counter/20240101T000000Z-ab12/app/archive.tar");
  assertEquals(parseCheckpointKey(key), parts);
  assertEquals(key.startsWith(podPrefix("default", "counter")), true);
  assertEquals(keyProblem(key), undefined);
  assertEquals(parseCheckpointKey("a/b/c"), undefined);
});

Deno.test("keyProblem refuses unsafe and reserved keys", () => {
  for (
    const bad of [
      "",
      "/a",
      "a/",
      "a//b",
      "a/../b",
      "./a",
      ".lpm-tmp-x",
      "a/.lpm-data/b",
      "a/b.meta.json",
      "a b",
    ]
  ) {
    assertEquals(typeof keyProblem(bad), "string", bad);
  }
});
