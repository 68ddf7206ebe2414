import { assert, assertEquals } from "@std/assert";
import { Controller, keyOf, splitKey, TerminalError } from "./controller.ts";
import { newControllerMetrics } from "./metrics.ts";
import { silentLogger } from "../../base/log.ts";

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => resolve = r);
  return { promise, resolve };
}

Deno.test("Controller retries a failing key with backoff until it succeeds", async () => {
  const calls: string[] = [];
  const done = deferred();
  const metrics = newControllerMetrics();
  const c = new Controller({
    name: "t",
    logger: silentLogger,
    metrics,
    queue: { baseDelayMs: 5 },
    reconcile: (key) => {
      calls.push(key);
      if (calls.length < 3) return Promise.reject(new Error("transient"));
      done.resolve();
      return Promise.resolve();
    },
  });
  c.start();
  c.enqueue("ns/a");
  await done.promise;
  await c.stop();
  assertEquals(calls, ["ns/a", "ns/a", "ns/a"]);
  assertEquals(metrics.reconcileTotal.get({ controller: "t", result: "error" }), 2);
  assertEquals(metrics.reconcileTotal.get({ controller: "t", result: "success" }), 1);
});

Deno.test("Controller does not retry a TerminalError", async () => {
  let n = 0;
  const c = new Controller({
    name: "t",
    logger: silentLogger,
    queue: { baseDelayMs: 1 },
    reconcile: () => {
      n++;
      return Promise.reject(new TerminalError("bad input"));
    },
  });
  c.start();
  c.enqueue("a");
  await new Promise((r) => setTimeout(r, 50));
  await c.stop();
  assertEquals(n, 1);
});

Deno.test("Controller runs one reconcile per key at a time, several keys in parallel", async () => {
  let inFlight = 0;
  let maxSameKey = 0;
  let maxOverall = 0;
  const perKey = new Map<string, number>();
  let total = 0;
  const done = deferred();
  const c = new Controller({
    name: "t",
    logger: silentLogger,
    workers: 4,
    reconcile: async (key) => {
      inFlight++;
      perKey.set(key, (perKey.get(key) ?? 0) + 1);
      maxSameKey = Math.max(maxSameKey, perKey.get(key)!);
      maxOverall = Math.max(maxOverall, inFlight);
      await new Promise((r) => setTimeout(r, 20));
      perKey.set(key, perKey.get(key)! - 1);
      inFlight--;
      if (++total === 6) done.resolve();
    },
  });
  c.start();
  for (const k of ["a", "b", "c"]) c.enqueue(k);
  await new Promise((r) => setTimeout(r, 5));
  for (const k of ["a", "b", "c"]) c.enqueue(k); // while in flight: queued again, not run twice at once
  await done.promise;
  await c.stop();
  assertEquals(maxSameKey, 1);
  assert(maxOverall >= 2, `expected parallel keys, max in flight ${maxOverall}`);
});

Deno.test("Controller honours requeueAfterMs", async () => {
  const times: number[] = [];
  const done = deferred();
  const c = new Controller({
    name: "t",
    logger: silentLogger,
    reconcile: () => {
      times.push(Date.now());
      if (times.length === 2) done.resolve();
      return Promise.resolve(times.length === 1 ? { requeueAfterMs: 40 } : undefined);
    },
  });
  c.start();
  c.enqueue("a");
  await done.promise;
  await c.stop();
  assert(times[1] - times[0] >= 35, `requeued after ${times[1] - times[0]} ms`);
});

Deno.test("keyOf and splitKey are inverse for namespaced and cluster-scoped objects", () => {
  assertEquals(keyOf({ metadata: { name: "m", namespace: "ns" } }), "ns/m");
  assertEquals(keyOf({ metadata: { name: "c" } }), "c");
  assertEquals(splitKey("ns/m"), { namespace: "ns", name: "m" });
  assertEquals(splitKey("c"), { namespace: "", name: "c" });
});
