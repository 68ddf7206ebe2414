import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { defaultClassConflicts, validateStorageClass } from "./validate.ts";

Deno.test("validateStorageClass: a writable local class is available", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lpm-validate-" });
  try {
    const r = await validateStorageClass({ provider: "local", local: { path: `${dir}/s` } });
    assert(r.available, r.message);
    assertStringIncludes(r.message, `${dir}/s`);
    // The probe leaves no object behind.
    const left = [...Deno.readDirSync(`${dir}/s`)].map((e) => e.name);
    assertEquals(left, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("validateStorageClass: configuration errors are Unavailable with the reason", async () => {
  const noSection = await validateStorageClass({ provider: "s3" });
  assertEquals(noSection.available, false);
  assertStringIncludes(noSection.message, '"spec.s3"');
  const noSecret = await validateStorageClass({
    provider: "minio",
    minio: { endpoint: "http://127.0.0.1:1", bucket: "b" },
    credentialsSecretRef: { name: "creds", namespace: "lpm" },
  }, { accessKeyId: "x" });
  assertEquals(noSecret.available, false);
  assertStringIncludes(noSecret.message, '"lpm/creds"');
  assertStringIncludes(noSecret.message, '"secretAccessKey"');
  // deno-lint-ignore no-explicit-any
  const unknown = await validateStorageClass({ provider: "ftp" } as any);
  assertStringIncludes(unknown.message, '"ftp"');
});

Deno.test("defaultClassConflicts reports more than one default", () => {
  const c = (name: string, def?: boolean) => ({ metadata: { name }, spec: { default: def } });
  assertEquals(defaultClassConflicts([c("a", true), c("b"), c("c", false)]), {
    defaults: ["a"],
    conflict: false,
    message: "",
  });
  const two = defaultClassConflicts([c("z", true), c("a", true), c("b")]);
  assertEquals(two.defaults, ["a", "z"]);
  assertEquals(two.conflict, true);
  assertStringIncludes(two.message, '"a", "z"');
  assertEquals(defaultClassConflicts([]).conflict, false);
});
