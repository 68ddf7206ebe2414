import { assertEquals, assertThrows } from "@std/assert";
import { collectGarbage, parseGoDuration } from "./gc.ts";
import { openFsFixture } from "../testing/storage_fixtures.ts";
import { streamOf } from "../testing/storage_conformance.ts";

Deno.test("parseGoDuration reads Go durations", () => {
  assertEquals(parseGoDuration("72h"), 72 * 3_600_000);
  assertEquals(parseGoDuration("1h30m"), 90 * 60_000);
  assertEquals(parseGoDuration("1.5s"), 1500);
  assertEquals(parseGoDuration("250ms"), 250);
  assertEquals(parseGoDuration("0"), 0);
  assertThrows(() => parseGoDuration("3 days"), Error, '"3 days"');
  assertThrows(() => parseGoDuration(""), Error);
});

Deno.test("retention keeps maxCount newest checkpoints per pod and drops those past maxAge", async () => {
  const f = await openFsFixture("local");
  try {
    const put = (k: string) => f.store.put(k, streamOf(new Uint8Array([1, 2, 3])));
    for (let i = 1; i <= 4; i++) {
      await put(`ns/pod-a/c${i}/archive.tar`);
      await put(`ns/pod-a/c${i}/meta.json`);
      await new Promise((r) => setTimeout(r, 5));
    }
    await put("ns/pod-b/c1/archive.tar");
    await put("other/pod-a/c1/archive.tar");
    const r = await collectGarbage(f.store, { retention: { maxCount: 2 }, debrisGraceMs: 0 });
    assertEquals(r.removed.map((x) => x.prefix).sort(), ["ns/pod-a/c1/", "ns/pod-a/c2/"]);
    assertEquals(r.objectsDeleted, 4);
    const keys = (await Array.fromAsync(f.store.list(""))).map((o) => o.key);
    assertEquals(keys, [
      "ns/pod-a/c3/archive.tar",
      "ns/pod-a/c3/meta.json",
      "ns/pod-a/c4/archive.tar",
      "ns/pod-a/c4/meta.json",
      "ns/pod-b/c1/archive.tar",
      "other/pod-a/c1/archive.tar",
    ]);
    // Two hours later with maxAge 1h, everything goes; a dry run deletes nothing.
    const later = new Date(Date.now() + 2 * 3_600_000);
    const dry = await collectGarbage(f.store, {
      retention: { maxAge: "1h" },
      now: later,
      dryRun: true,
    });
    assertEquals(dry.removed.length, 4);
    assertEquals((await Array.fromAsync(f.store.list(""))).length, 6);
    const wet = await collectGarbage(f.store, {
      retention: { maxAge: "1h" },
      now: later,
      prefix: "ns/",
    });
    assertEquals(wet.removed.length, 3);
    assertEquals((await Array.fromAsync(f.store.list(""))).map((o) => o.key), [
      "other/pod-a/c1/archive.tar",
    ]);
    assertEquals(await f.debris(), 0);
  } finally {
    await f.cleanup();
  }
});

Deno.test("GC removes debris older than the grace period only", async () => {
  const f = await openFsFixture("local");
  try {
    await f.store.put("ns/pod/c/f", streamOf(new Uint8Array(10)));
    const root = `${f.dir}/store/ns/pod/c`;
    await Deno.writeTextFile(`${root}/.lpm-tmp-dead.data`, "partial");
    await Deno.writeTextFile(`${root}/orphan`, "data without sidecar");
    assertEquals(await f.debris(), 2);
    assertEquals((await collectGarbage(f.store, { debrisGraceMs: 3_600_000 })).debrisRemoved, 0);
    const old = new Date(Date.now() - 7_200_000);
    await Deno.utime(`${root}/.lpm-tmp-dead.data`, old, old);
    await Deno.utime(`${root}/orphan`, old, old);
    assertEquals((await collectGarbage(f.store, { debrisGraceMs: 3_600_000 })).debrisRemoved, 2);
    assertEquals(await f.debris(), 0);
    assertEquals((await f.store.stat("ns/pod/c/f"))?.size, 10);
  } finally {
    await f.cleanup();
  }
});

Deno.test("retention keeps protected checkpoints, calls beforeRemove first, and leaves a checkpoint whole when it throws", async () => {
  const f = await openFsFixture("local");
  try {
    const put = (k: string, n = 3) => f.store.put(k, streamOf(new Uint8Array(n)));
    for (let i = 1; i <= 4; i++) {
      await put(`ns/pod/c${i}/app.tar`, 10);
      await put(`ns/pod/c${i}/app.checkpoint.json`, 2);
      await new Promise((r) => setTimeout(r, 5));
    }
    const seen: string[][] = [];
    const r = await collectGarbage(f.store, {
      retention: { maxCount: 1 },
      protect: (p) => p === "ns/pod/c1/",
      beforeRemove: async (prefix, keys) => {
        // Its objects are all still there when the hook runs.
        assertEquals((await Array.fromAsync(f.store.list(prefix))).length, 2);
        seen.push([...keys].sort());
        if (prefix === "ns/pod/c2/") throw new Error("registry down");
      },
    });
    assertEquals(r.removed.map((x) => x.prefix), ["ns/pod/c3/"]);
    assertEquals(r.protected, ["ns/pod/c1/"]);
    assertEquals(r.failed, [{ prefix: "ns/pod/c2/", error: "registry down" }]);
    assertEquals(seen, [
      ["ns/pod/c3/app.checkpoint.json", "ns/pod/c3/app.tar"],
      ["ns/pod/c2/app.checkpoint.json", "ns/pod/c2/app.tar"],
    ]);
    assertEquals(r.checkpoints, 3);
    assertEquals(r.bytes, 36);
    const left = (await Array.fromAsync(f.store.list(""))).map((o) => o.key).sort();
    assertEquals(left, [
      "ns/pod/c1/app.checkpoint.json",
      "ns/pod/c1/app.tar",
      "ns/pod/c2/app.checkpoint.json",
      "ns/pod/c2/app.tar",
      "ns/pod/c4/app.checkpoint.json",
      "ns/pod/c4/app.tar",
    ]);
  } finally {
    await f.cleanup();
  }
});
