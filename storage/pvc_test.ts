import { assertEquals, assertRejects, assertStringIncludes } from "@std/assert";
import { registerConformance, streamOf } from "../testing/storage_conformance.ts";
import { openFsFixture } from "../testing/storage_fixtures.ts";
import { createPvcStore } from "./pvc.ts";
import { StorageError } from "./errors.ts";

registerConformance({ name: "pvc", open: () => openFsFixture("pvc") });

Deno.test("pvc: a claim that is not mounted is NotFound naming the mount path", async () => {
  const store = createPvcStore({
    claimName: "ckpt",
    mountPath: "/nonexistent/lpm-mount",
    subPath: "x",
  });
  const err = await assertRejects(
    () => store.put("ns/pod/c/f", streamOf(new Uint8Array(3))),
    StorageError,
  );
  assertEquals(err.code, "NotFound");
  assertStringIncludes(err.message, '"/nonexistent/lpm-mount"');
  assertStringIncludes(err.message, "mounted");
});
