import { assertEquals } from "@std/assert";
import { ProgressPacer, progressToRecord } from "./checkpoint_progress.ts";

Deno.test("checkpoint progress: a new step or total is recorded at once", () => {
  const prev = { phase: "dumping", bytesDone: 10, bytesTotal: 100 };
  assertEquals(progressToRecord(undefined, prev), prev);
  const upload = { phase: "uploading", bytesDone: 0, bytesTotal: 100 };
  assertEquals(progressToRecord(prev, upload), upload);
  const total = { phase: "dumping", bytesDone: 10, bytesTotal: 200 };
  assertEquals(progressToRecord(prev, total), total);
});

Deno.test("checkpoint progress: bytes are recorded by quarters of the total", () => {
  const at = (done: number) => ({ phase: "uploading", bytesDone: done, bytesTotal: 1000 });
  let rec = progressToRecord(undefined, at(0));
  const patches: number[] = [];
  for (let done = 0; done <= 1000; done += 40) {
    const next = progressToRecord(rec, at(done));
    if (next !== rec) patches.push(done);
    rec = next;
  }
  // 26 polls, 4 recorded: 25 %, 50 %, 75 %, 100 %.
  assertEquals(patches, [280, 520, 760, 1000]);
  assertEquals(rec, at(1000));
});

Deno.test("checkpoint progress: without a total, the first bytes and each doubling", () => {
  const at = (done: number) => ({ phase: "dumping", bytesDone: done });
  let rec = progressToRecord(undefined, at(0));
  const patches: number[] = [];
  for (const done of [0, 1, 1, 2, 3, 4, 7, 8, 9, 100]) {
    const next = progressToRecord(rec, at(done));
    if (next !== rec) patches.push(done);
    rec = next;
  }
  assertEquals(patches, [1, 2, 4, 8, 100]);
});

Deno.test("ProgressPacer: the first progress at once, then at most one per interval; keys apart", () => {
  const p = new ProgressPacer(2000);
  const a = { phase: "queued", bytesDone: 0, bytesTotal: 0 };
  const b = { phase: "checkpointing", bytesDone: 0, bytesTotal: 0 };
  const c = { phase: "storing", bytesDone: 0, bytesTotal: 0 };
  assertEquals(p.pace("x", undefined, a, 0), a);
  assertEquals(p.pace("x", a, b, 500), a); // too soon: the recorded one stays
  assertEquals(p.pace("y", undefined, b, 500), b); // another object is not held back
  assertEquals(p.pace("x", a, b, 2000), b);
  assertEquals(p.pace("x", b, b, 9000), b); // nothing new: nothing to record
  assertEquals(p.pace("x", b, c, 3000), b);
  p.forget("x");
  assertEquals(p.pace("x", b, c, 3001), c);
});
