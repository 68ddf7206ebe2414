import { assertEquals } from "@std/assert";
import { apiCriuStats } from "./criu_stats.ts";

Deno.test("apiCriuStats names CRIU's times with their unit and keeps the page counts", () => {
  assertEquals(
    apiCriuStats({
      freezingTime: 130,
      frozenTime: 586315,
      memdumpTime: 569231,
      memwriteTime: 524183,
      pagesScanned: 65559,
      pagesSkippedParent: 0,
      pagesWritten: 65552,
      irmapResolve: 3,
    }),
    {
      freezingTimeUs: 130,
      frozenTimeUs: 586315,
      memdumpTimeUs: 569231,
      memwriteTimeUs: 524183,
      pagesScanned: 65559,
      pagesSkippedParent: 0,
      pagesWritten: 65552,
    },
  );
});

Deno.test("apiCriuStats passes API names through and drops non-numbers and negatives", () => {
  assertEquals(
    apiCriuStats({ frozenTimeUs: 1234, pagesWritten: -1, memdumpTime: NaN } as Record<
      string,
      number
    >),
    { frozenTimeUs: 1234 },
  );
});
