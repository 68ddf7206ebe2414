import { assertEquals, assertStringIncludes } from "@std/assert";
import { ociTable } from "./oci.ts";

Deno.test("ociTable: both sides' median (min-max) and the per-round ratio ref/lpm", () => {
  const t = ociTable([
    { what: "push", refName: "skopeo copy", ref: [2, 6, 4], ours: [1, 2, 4] },
  ], 1024);
  const row = t.split("\n")[2];
  assertStringIncludes(row, "2.00 (1.00-4.00)"); // lpm
  assertStringIncludes(row, "512"); // MiB/s at the median
  assertStringIncludes(row, "4.00 (2.00-6.00)"); // reference
  assertStringIncludes(row, "2.00 (1.00-3.00)"); // ratios 2, 3, 1
  assertEquals(t.split("\n").length, 3);
});
