import { assertEquals, assertStringIncludes } from "@std/assert";
import { formatBytes, Progress, renderLine } from "./progress.ts";

Deno.test("renderLine shows phase, bar, bytes and elapsed time", () => {
  const l = renderLine(
    { phase: "Checkpointing", bytesDone: 512 * 1024, bytesTotal: 1024 * 1024 },
    2500,
    0,
    10,
  );
  assertStringIncludes(l, "Checkpointing");
  assertStringIncludes(l, "[#####.....]  50%");
  assertStringIncludes(l, "512.0 KiB/1.0 MiB");
  assertStringIncludes(l, "2.5s");
  assertEquals(formatBytes(1536), "1.5 KiB");
  assertEquals(formatBytes(10), "10 B");
});

Deno.test("Progress prints plain lines without a terminal, once per change", () => {
  const out: string[] = [];
  const p = new Progress(false, (s) => out.push(s));
  p.update({ phase: "Pending" });
  p.update({ phase: "Pending" });
  p.update({ phase: "Checkpointing" });
  p.done("Succeeded");
  assertEquals(out.length, 3);
  assertEquals(
    out.some((l) => l.includes("\r") || l.includes("\x1b")),
    false,
    "no control characters",
  );
});

Deno.test("Progress redraws one line on a terminal", () => {
  const out: string[] = [];
  const p = new Progress(true, (s) => out.push(s));
  p.update({ phase: "Pending" });
  p.update({ phase: "Pending" });
  assertEquals(out.length, 2);
  assertEquals(out.every((l) => l.startsWith("\r\x1b[2K")), true);
});
