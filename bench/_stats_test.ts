import { assertEquals, assertThrows } from "@std/assert";
import { formatSpread, formatTable, parsePositiveInts, roundOrder, spread } from "./_stats.ts";

Deno.test("spread: min, median and max of odd, even and empty samples", () => {
  assertEquals(spread([3, 1, 2]), { min: 1, median: 2, max: 3 });
  assertEquals(spread([4, 1, 3, 2]), { min: 1, median: 2.5, max: 4 });
  assertEquals(Number.isNaN(spread([]).median), true);
  assertEquals(formatSpread(spread([1, 2, 4]), 1), "2.0 (1.0-4.0)");
  assertEquals(formatSpread(spread([])), "-");
});

Deno.test("roundOrder alternates which side runs first", () => {
  assertEquals([0, 1, 2, 3].map((r) => roundOrder(r, ["floor", "lpm"])[0]), [
    "floor",
    "lpm",
    "floor",
    "lpm",
  ]);
  assertEquals(roundOrder(1, ["floor", "a", "b"]), ["b", "a", "floor"]);
});

Deno.test("formatTable pads columns to the widest cell", () => {
  assertEquals(
    formatTable(["a", "bb"], [["xyz", "1"], ["q"]]),
    "a   | bb\n----|---\nxyz | 1\nq   |",
  );
});

Deno.test("parsePositiveInts reads --sizes and names the flag on bad input", () => {
  assertEquals(parsePositiveInts("16, 256,1024", "sizes"), [16, 256, 1024]);
  for (const bad of ["", "0", "16,x", "-1", "1.5"]) {
    assertThrows(() => parsePositiveInts(bad, "sizes"), Error, "--sizes");
  }
});
