import { assert, assertEquals } from "@std/assert";
import { type DeadlineClock, type DeadlineEvent, FreezeDeadlines } from "./freeze_deadline.ts";
import type { FreezeRecord } from "./freeze_deadline.ts";

/** A clock whose timers fire only when the test advances it. */
function fakeClock(start = 1_000_000): DeadlineClock & { advance(ms: number): void } {
  let t = start;
  let seq = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  return {
    now: () => t,
    set(fn, ms) {
      timers.set(++seq, { at: t + Math.max(0, ms), fn });
      return seq;
    },
    clear: (h) => void timers.delete(h as number),
    advance(ms) {
      t += ms;
      for (const [h, timer] of [...timers].sort((a, b) => a[1].at - b[1].at)) {
        if (timer.at <= t) {
          timers.delete(h);
          timer.fn();
        }
      }
    },
  };
}

function record(key: string, clock: DeadlineClock, deadlineInMs: number): FreezeRecord {
  return {
    key,
    namespace: "default",
    pod: `pod-${key}`,
    containers: [{ id: `id-${key}`, name: "app" }],
    frozenAt: clock.now(),
    deadline: clock.now() + deadlineInMs,
  };
}

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "lpm-freeze-deadline-" });
  try {
    await fn(`${dir}/freezes`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("freeze deadline: thaws when nobody confirms, not before; the record goes", async () => {
  await withDir(async (dir) => {
    const clock = fakeClock();
    const thawed: string[] = [];
    const events: DeadlineEvent[] = [];
    const d = await FreezeDeadlines.open({
      dir,
      clock,
      thaw: (r) => Promise.resolve(thawed.push(r.pod)),
      onEvent: (e) => events.push(e),
    });
    await d.arm(record("m1", clock, 10_000));
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["m1.json"]);
    clock.advance(9_999);
    await d.settled();
    assertEquals(thawed, []);
    clock.advance(1);
    await d.settled();
    assertEquals(thawed, ["pod-m1"]);
    assertEquals(events.map((e) => e.type), ["thawed"]);
    assertEquals(d.list(), []);
    assertEquals([...Deno.readDirSync(dir)], []);
    assertEquals(await d.confirm("m1"), false, "a thawed pod must not be handed over");
    d.close();
  });
});

Deno.test("freeze deadline: confirm ends it (no thaw later); extend moves it", async () => {
  await withDir(async (dir) => {
    const clock = fakeClock();
    const thawed: string[] = [];
    const d = await FreezeDeadlines.open({
      dir,
      clock,
      thaw: (r) => Promise.resolve(thawed.push(r.key)),
    });
    await d.arm(record("a", clock, 1_000));
    await d.arm(record("b", clock, 1_000));
    assert(await d.extend("b", clock.now() + 5_000));
    assert(await d.confirm("a"));
    clock.advance(2_000);
    await d.settled();
    assertEquals(thawed, [], "confirmed and extended pods stay frozen");
    clock.advance(3_000);
    await d.settled();
    assertEquals(thawed, ["b"]);
    assertEquals(await d.extend("b", clock.now() + 1), false);
    d.close();
  });
});

Deno.test("freeze deadline: an agent restart thaws expired records and re-arms the others", async () => {
  await withDir(async (dir) => {
    const clock = fakeClock();
    const first = await FreezeDeadlines.open({ dir, clock, thaw: () => Promise.resolve() });
    await first.arm(record("old", clock, 1_000));
    await first.arm(record("new", clock, 60_000));
    first.close(); // the agent dies: timers gone, records stay
    await Deno.writeTextFile(`${dir}/torn.json.1234.tmp`, "{");

    clock.advance(5_000);
    const thawed: string[] = [];
    const second = await FreezeDeadlines.open({
      dir,
      clock,
      thaw: (r) => Promise.resolve(thawed.push(r.key)),
    });
    clock.advance(0);
    await second.settled();
    assertEquals(thawed, ["old"]);
    assertEquals(second.list().map((r) => r.key), ["new"]);
    clock.advance(54_999);
    await second.settled();
    assertEquals(thawed, ["old"]);
    clock.advance(1);
    await second.settled();
    assertEquals(thawed, ["old", "new"]);
    assertEquals([...Deno.readDirSync(dir)], [], "the torn temp file is removed too");
    second.close();
  });
});

Deno.test("freeze deadline: a failed thaw keeps the record and is retried", async () => {
  await withDir(async (dir) => {
    const clock = fakeClock();
    let fail = true;
    const events: DeadlineEvent[] = [];
    const d = await FreezeDeadlines.open({
      dir,
      clock,
      retryMs: 2_000,
      thaw: () => fail ? Promise.reject(new Error("containerd is down")) : Promise.resolve(),
      onEvent: (e) => events.push(e),
    });
    await d.arm(record("x", clock, 100));
    clock.advance(100);
    await d.settled();
    assertEquals(events.map((e) => e.type), ["thawFailed"]);
    assertEquals(d.list().length, 1);
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["x.json"]);
    fail = false;
    clock.advance(2_000);
    await d.settled();
    assertEquals(events.map((e) => e.type), ["thawFailed", "thawed"]);
    assertEquals(d.list(), []);
    d.close();
  });
});

Deno.test("freeze deadline: thawNow thaws at once; keys must be file-safe", async () => {
  await withDir(async (dir) => {
    const clock = fakeClock();
    const thawed: string[] = [];
    const d = await FreezeDeadlines.open({
      dir,
      clock,
      thaw: (r) => Promise.resolve(thawed.push(r.key)),
    });
    await d.arm(record("y", clock, 60_000));
    assert(await d.thawNow("y"));
    assertEquals(thawed, ["y"]);
    assertEquals(await d.thawNow("y"), false);
    const err = await d.arm(record("../etc", clock, 1)).catch((e) => e as Error);
    assert(err instanceof Error && /is not \[A-Za-z0-9._-\]/.test(err.message));
    d.close();
  });
});
