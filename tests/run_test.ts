import { assertEquals } from "@std/assert";
import { parseSummary } from "./run.ts";

Deno.test("parseSummary reads Deno's closing line, steps and ignored included", () => {
  assertEquals(parseSummary("ok | 12 passed (3 steps) | 0 failed | 2 ignored (40s)"), {
    passed: 12,
    failed: 0,
    skipped: 2,
  });
  assertEquals(parseSummary("\x1b[31mFAILED\x1b[0m | 4 passed | 1 failed (2s)"), {
    passed: 4,
    failed: 1,
    skipped: 0,
  });
  assertEquals(parseSummary("no summary here"), undefined);
});
