import { assertEquals, assertNotEquals } from "@std/assert";
import { canonicalJson } from "./canonical_json.ts";

Deno.test("canonicalJson: key order does not matter, values and array order do", () => {
  const a = { phase: "Running", conditions: [{ type: "A", status: "True" }], n: { y: 1, x: 2 } };
  const b = { n: { x: 2, y: 1 }, conditions: [{ status: "True", type: "A" }], phase: "Running" };
  assertEquals(canonicalJson(a), canonicalJson(b));
  assertEquals(canonicalJson({ a: 1, b: undefined }), canonicalJson({ a: 1 }));
  assertNotEquals(canonicalJson({ l: [1, 2] }), canonicalJson({ l: [2, 1] }));
  assertNotEquals(canonicalJson({ a: 1 }), canonicalJson({ a: "1" }));
  assertEquals(canonicalJson({ d: new Date(0) }), '{"d":"1970-01-01T00:00:00.000Z"}');
});
