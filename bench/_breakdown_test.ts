import { assertEquals } from "@std/assert";
import { criuLogSpan, downtimeBreakdown, STEPS } from "./_breakdown.ts";

const byName = (steps: { name: string; ms: number }[]) =>
  Object.fromEntries(steps.map((s) => [s.name, s.ms]));

Deno.test("downtimeBreakdown: every step from its timestamps, summing to the downtime", () => {
  const steps = downtimeBreakdown({
    frozenAt: 1000,
    criuDumpMs: 600,
    dumpedAt: 2000,
    storedAt: 4000,
    transferringAt: 4100,
    restoringAt: 5000,
    criuRestore: { startAt: 6000, endAt: 6800 },
    runningAt: 6810,
  });
  assertEquals(steps.map((s) => s.name), [...STEPS]);
  assertEquals(byName(steps), {
    "CRIU dump": 600,
    "archive": 400,
    "upload": 2000,
    "controller": 100,
    "pull on target": 900,
    "pod start": 1000,
    "CRIU restore": 800,
    "running": 10,
    "other": 0,
  });
  assertEquals(steps.reduce((a, s) => a + s.ms, 0), 5810);
});

Deno.test("downtimeBreakdown: a missing timestamp merges its step into the next", () => {
  const b = byName(downtimeBreakdown({
    frozenAt: 0,
    dumpedAt: 1000,
    storedAt: 3000,
    transferringAt: 3000,
    restoringAt: 4000,
    runningAt: 6000,
  }));
  assertEquals(b["CRIU dump"], 0);
  assertEquals(b["archive"], 1000); // dump and archive together
  assertEquals(b["pod start"], 0);
  assertEquals(b["CRIU restore"], 0);
  assertEquals(b["running"], 2000); // pod start, restore and running together
  assertEquals(b["other"], 0);
});

Deno.test("criuLogSpan: the last timestamp is CRIU's run time, ending at the file's mtime", () => {
  const log =
    "(00.000000) CRIU run id = x\n(00.500000) Restoring\n(01.030849) Running post-resume\n\tRPC\n";
  assertEquals(criuLogSpan(log, 10_000), { startAt: 10_000 - 1030.849, endAt: 10_000 });
  assertEquals(criuLogSpan("no timestamps", 5), undefined);
});
