import { assertEquals } from "@std/assert";
import { renewIn } from "./pod_checkpoint.ts";

Deno.test("pod checkpoint: a freeze is renewed once less than half its window is left", () => {
  const now = new Date("2026-01-01T00:00:00.000Z");
  const at = (s: number) => new Date(now.getTime() + s * 1000).toISOString();
  // 120 s window, just renewed: the next renewal is due in 60 s.
  assertEquals(renewIn(at(120), 120, now), 60_000);
  assertEquals(renewIn(at(61), 120, now), 1_000);
  assertEquals(renewIn(at(60), 120, now), 0);
  assertEquals(renewIn(at(-5), 120, now), 0); // past: renew (the agent says if it thawed)
  assertEquals(renewIn(undefined, 120, now), 0);
  assertEquals(renewIn("not a time", 120, now), 0);
  assertEquals(renewIn(at(10), 10, now), 5_000);
});
