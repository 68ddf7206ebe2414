import { assert, assertEquals } from "@std/assert";
import { DEFAULT_MAX_DELAY_MS, WorkQueue } from "./workqueue.ts";

Deno.test("WorkQueue de-duplicates keys that are waiting", async () => {
  const q = new WorkQueue();
  q.add("a");
  q.add("b");
  q.add("a");
  assertEquals(q.len(), 2);
  assertEquals(await q.get(), "a");
  assertEquals(await q.get(), "b");
  q.shutDown();
});

Deno.test("WorkQueue never hands one key to two workers; a key added in flight comes back after done", async () => {
  const q = new WorkQueue();
  q.add("a");
  const k = await q.get();
  assertEquals(k, "a");
  q.add("a"); // while processing
  assertEquals(q.len(), 0, "must not be handed out while in flight");
  q.done("a");
  assertEquals(q.len(), 1);
  assertEquals(await q.get(), "a");
  q.done("a");
  q.shutDown();
  assertEquals(await q.get(), undefined);
});

Deno.test("WorkQueue backs off per key exponentially and forget() resets it", () => {
  let now = 0;
  const q = new WorkQueue({
    baseDelayMs: 10,
    maxDelayMs: 100,
    qps: 1000,
    burst: 1000,
    now: () => now,
  });
  assertEquals(q.addRateLimited("a"), 10);
  assertEquals(q.addRateLimited("a"), 20);
  assertEquals(q.addRateLimited("a"), 40);
  assertEquals(q.addRateLimited("a"), 80);
  assertEquals(q.addRateLimited("a"), 100, "capped at maxDelayMs");
  assertEquals(q.addRateLimited("b"), 10, "backoff is per key");
  assertEquals(q.numRequeues("a"), 5);
  q.forget("a");
  assertEquals(q.addRateLimited("a"), 10);
  now += 1;
  q.shutDown();
});

Deno.test("WorkQueue's overall rate limiter delays retries beyond the burst", () => {
  const now = 0;
  const q = new WorkQueue({ baseDelayMs: 1, qps: 10, burst: 2, now: () => now });
  assertEquals(q.addRateLimited("a"), 1);
  assertEquals(q.addRateLimited("b"), 1);
  assertEquals(q.addRateLimited("c"), 100, "third retry in the same instant waits for a token");
  assertEquals(q.addRateLimited("d"), 200);
  q.shutDown();
});

Deno.test("WorkQueue.addAfter delivers later; an earlier pending add wins", async () => {
  const q = new WorkQueue();
  q.addAfter("a", 30);
  q.addAfter("a", 1000); // later: ignored
  assertEquals(q.len(), 0);
  assertEquals(q.delayedLen(), 1);
  const t0 = Date.now();
  assertEquals(await q.get(), "a");
  const waited = Date.now() - t0;
  assertEquals(waited >= 20 && waited < 900, true, `waited ${waited} ms`);
  q.shutDown();
});

Deno.test("WorkQueue.shutDown releases waiting workers", async () => {
  const q = new WorkQueue();
  const p = q.get();
  q.shutDown();
  assertEquals(await p, undefined);
  q.add("x");
  assertEquals(q.len(), 0, "no adds after shutdown");
});

Deno.test("WorkQueue's default backoff stays under the shortest freeze deadline (10 s)", () => {
  const q = new WorkQueue({ qps: 1000, burst: 1000, now: () => 0 });
  let last = 0;
  for (let i = 0; i < 20; i++) last = q.addRateLimited("a");
  assertEquals(last, DEFAULT_MAX_DELAY_MS);
  assert(DEFAULT_MAX_DELAY_MS * 2 <= 10_000, "two retries fit in the shortest deadline");
  q.shutDown();
});

Deno.test("WorkQueue holds a delay longer than a timer can (a year's TTL) instead of firing it at once", async () => {
  const q = new WorkQueue();
  q.addAfter("a", 365 * 24 * 3600 * 1000);
  q.addAfter("b", 30);
  // Unclamped, setTimeout fires "a" after 1 ms, before "b".
  assertEquals(await q.get(), "b");
  q.done("b");
  assertEquals(q.len(), 0, "the year-long requeue is still waiting");
  q.shutDown();
});
