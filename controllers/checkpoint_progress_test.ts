import { assertEquals } from "@std/assert";
import { progressToRecord } from "./checkpoint_progress.ts";

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
