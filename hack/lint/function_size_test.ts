import { assertEquals, assertStringIncludes } from "@std/assert";
import plugin, { lineSpan, MAX_FUNCTION_LINES } from "./function_size.ts";

function source(bodyLines: number): string {
  const body = Array.from({ length: bodyLines }, (_, i) => `  console.log(${i});`).join("\n");
  return `export function f() {\n${body}\n}\n`;
}

Deno.test("lineSpan counts the lines a range covers", () => {
  assertEquals(lineSpan("a\nb\nc", 0, 5), 3);
  assertEquals(lineSpan("abc", 0, 3), 1);
});

Deno.test("max-function-lines reports a function of 120 lines and passes one of 119", () => {
  // A function of n body lines spans n + 2 lines.
  const long = Deno.lint.runPlugin(plugin, "long.ts", source(MAX_FUNCTION_LINES - 2));
  assertEquals(long.length, 1);
  assertStringIncludes(long[0].message, `spans ${MAX_FUNCTION_LINES} lines`);
  assertEquals(Deno.lint.runPlugin(plugin, "ok.ts", source(MAX_FUNCTION_LINES - 3)), []);
});

Deno.test("max-function-lines counts closures toward the function that holds them", () => {
  const inner = Array.from({ length: 130 }, (_, i) => `    console.log(${i});`).join("\n");
  const text = `export function outer() {\n  return () => {\n${inner}\n  };\n}\n`;
  const found = Deno.lint.runPlugin(plugin, "nested.ts", text);
  assertEquals(found.length, 2, "both the factory and its closure are too long");
});
