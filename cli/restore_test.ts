import { assertEquals, assertThrows } from "@std/assert";
import { parseRestoreRef } from "./restore.ts";

Deno.test("restore references: storage, s3, image, OCI archive", () => {
  assertEquals(parseRestoreRef("s3://minio/ns/pod/op1/app.tar"), {
    kind: "storage",
    storageClassName: "minio",
    key: "ns/pod/op1/app.tar",
  });
  assertEquals(parseRestoreRef("storage:local/ns/pod/op1/app.checkpoint.json").kind, "storage");
  assertEquals(parseRestoreRef("127.0.0.1:5000/lpm/cp:app-1"), {
    kind: "image",
    image: "127.0.0.1:5000/lpm/cp:app-1",
  });
  assertEquals(parseRestoreRef("oci-archive:/tmp/x.tar"), { kind: "layout", path: "/tmp/x.tar" });
  assertThrows(() => parseRestoreRef("storage:only-a-class"), Error, "needs a class and a key");
  assertThrows(() => parseRestoreRef("nonsense"), Error, "neither");
});
