import {
  assert,
  assertEquals,
  AssertionError,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "./mod.ts";

Deno.test("assertEquals compares deeply and fails with AssertionError", () => {
  assertEquals({ a: [1, 2] }, { a: [1, 2] });
  const err = assertThrows(() => assertEquals({ a: 1 }, { a: 2 }), AssertionError);
  assertStringIncludes(err.message, "a");
});

Deno.test("assert fails on falsy values", () => {
  assertThrows(() => assert(0), AssertionError);
});

Deno.test("assertRejects checks the class and message", async () => {
  const err = await assertRejects(
    () => Promise.reject(new TypeError("bad bucket")),
    TypeError,
    "bucket",
  );
  assert(err instanceof TypeError);
  await assertRejects(
    () => assertRejects(() => Promise.resolve(1)),
    AssertionError,
    "Expected function to reject",
  );
});
