/** The import rules of hack/import_graph.ts on small synthetic edge lists. */
import { assert, assertEquals } from "@std/assert";
import { cycles, type Edge, importsOf, isTestCode, violations } from "./import_graph.ts";

const edges = (...pairs: [string, string][]): Edge[] => pairs.map(([from, to]) => ({ from, to }));

Deno.test("import graph: a file-level cycle is found and printed as a loop", () => {
  const bad = violations(edges(
    ["storage/a.ts", "storage/b.ts"],
    ["storage/b.ts", "storage/c.ts"],
    ["storage/c.ts", "storage/a.ts"],
  ));
  assertEquals(bad, [
    "File import cycle: storage/a.ts -> storage/b.ts -> storage/c.ts -> storage/a.ts",
  ]);
  assertEquals(cycles([["x", "y"], ["y", "z"]]), [], "a chain is no cycle");
});

Deno.test("import graph: a folder-level cycle is found even without a file cycle", () => {
  // kube -> archive and archive -> kube through different files: no file
  // loops, but the two folders import each other (and sit on one layer).
  const bad = violations(edges(
    ["kube/a.ts", "archive/b.ts"],
    ["archive/c.ts", "kube/d.ts"],
  ));
  assert(bad.includes("Folder import cycle: archive -> kube -> archive"), bad.join("\n"));
  assert(!bad.some((l) => l.startsWith("File import cycle")), bad.join("\n"));
});

Deno.test("import graph: product code importing test code is found", () => {
  const bad = violations(edges(["storage/s3.ts", "testing/env.ts"]));
  assert(
    bad.includes(`Product file "storage/s3.ts" imports test code "testing/env.ts"`),
    bad.join("\n"),
  );
  const viaTestFile = violations(edges(["oci/push.ts", "oci/push_test.ts"]));
  assert(viaTestFile.some((l) => l.includes("imports test code")), viaTestFile.join("\n"));
  assert(isTestCode("tests/run.ts") && isTestCode("agent/server_test.ts"));
  assert(!isTestCode("localenv/environment.ts"), "the local environment is product code");
});

Deno.test("import graph: imports that point down the layers pass", () => {
  assertEquals(
    violations(edges(
      ["agent/server.ts", "contract/agent.ts"],
      ["controllers/manager.ts", "kube/lpm_client.ts"],
      ["contract/agent.ts", "api/mod.ts"],
      ["cli/migrate.ts", "controllers/mod.ts"],
      ["localenv/demo.ts", "cli/migrate.ts"],
      ["storage/s3.ts", "base/log.ts"],
      ["storage/s3.ts", "storage/_endpoint.ts"],
      ["tests/e2e_test.ts", "localenv/mod.ts"],
      ["tests/e2e_test.ts", "testing/env.ts"],
    )),
    [],
  );
});

Deno.test("import graph: a sideways import between agent/ and controllers/ fails, both ways", () => {
  const bad = violations(edges(["controllers/restore.ts", "agent/runtime/select.ts"]));
  assertEquals(bad, [
    `"controllers/restore.ts" (layer controllers) imports "agent/runtime/select.ts" (layer agent), which is not below it`,
  ]);
  const back = violations(edges(["agent/main.ts", "controllers/deps.ts"]));
  assertEquals(back.length, 1, back.join("\n"));
});

Deno.test("import graph: an upward import fails", () => {
  const bad = violations(edges(["storage/s3.ts", "oci/push.ts"]));
  assertEquals(bad, [
    `"storage/s3.ts" (layer storage) imports "oci/push.ts" (layer oci), which is not below it`,
  ]);
});

Deno.test("import graph: another folder's private _file is refused, its own folder's is fine", () => {
  const bad = violations(edges(["controllers/restore.ts", "agent/runtime/_types.ts"]));
  assert(
    bad.includes(
      `"controllers/restore.ts" imports "agent/runtime/_types.ts", which is private to its folder`,
    ),
    bad.join("\n"),
  );
  assertEquals(violations(edges(["agent/runtime/kubelet.ts", "agent/runtime/_types.ts"])), []);
  // A subfolder may use its parent's private files, not the other way round.
  assertEquals(violations(edges(["agent/runtime/kubelet.ts", "agent/_util.ts"])), []);
  assertEquals(violations(edges(["agent/server.ts", "agent/runtime/_types.ts"])).length, 1);
});

Deno.test("import graph: importsOf reads static, re-export and dynamic imports, relative only", () => {
  const src = [
    `import { a } from "./a.ts";`,
    `import type { B } from "../api/b.ts";`,
    `export { c } from "./sub/c.ts";`,
    `import "./side_effect.ts";`,
    `const d = await import("../base/d.ts");`,
    `import { assert } from "@std/assert";`,
    `import * as k8s from "npm:@kubernetes/client-node";`,
  ].join("\n");
  assertEquals(importsOf("storage/x.ts", src).sort(), [
    "api/b.ts",
    "base/d.ts",
    "storage/a.ts",
    "storage/side_effect.ts",
    "storage/sub/c.ts",
  ]);
});
