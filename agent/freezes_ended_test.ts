import { assertEquals } from "@std/assert";
import { EndedFreezes } from "./freezes_ended.ts";

Deno.test("EndedFreezes: kept across a reopen, old entries and foreign names dropped", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lpm-ended-" });
  try {
    const a = await EndedFreezes.open<{ key: string; state: string }>(dir);
    a.set("k1", { key: "k1", state: "confirmed" });
    a.set("../x", { key: "../x", state: "thawed" }); // never a file name
    await Deno.writeTextFile(`${dir}/k9.json`, JSON.stringify({ key: "other", state: "x" }));
    const b = await EndedFreezes.open<{ key: string; state: string }>(dir);
    assertEquals([...b.entries()], [["k1", { key: "k1", state: "confirmed" }]]);
    const names = () => [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assertEquals(names(), ["k1.json", "k9.json"], "a foreign file is ignored, not loaded");
    const later = await EndedFreezes.open(dir, { now: () => Date.now() + 25 * 3600_000 });
    assertEquals(later.size, 0, "older than a day: dropped");
    assertEquals(names(), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
