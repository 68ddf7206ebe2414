import { assertEquals, assertRejects } from "@std/assert";
import { teeInStep } from "./tee.ts";

/** A source of `n` numbered chunks that counts how many were read. */
function counted(n: number) {
  const state = { read: 0 };
  const stream = new ReadableStream<number>({
    pull(c) {
      if (state.read === n) return c.close();
      c.enqueue(state.read++);
    },
  }, { highWaterMark: 0 });
  return { stream, state };
}

async function all<T>(s: ReadableStream<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of s) out.push(x);
  return out;
}

Deno.test("teeInStep: both branches get every chunk, in order", async () => {
  const { stream } = counted(100);
  const [a, b] = teeInStep(stream);
  const [xa, xb] = await Promise.all([all(a), all(b)]);
  const want = Array.from({ length: 100 }, (_, i) => i);
  assertEquals(xa, want);
  assertEquals(xb, want);
});

Deno.test("teeInStep: the source is read only as fast as the slower branch", async () => {
  const { stream, state } = counted(1000);
  const [a, b] = teeInStep(stream);
  const ra = a.getReader();
  const rb = b.getReader();
  // Branch a reads 50 chunks while branch b reads none: the source stays near b.
  const reading = (async () => {
    for (let i = 0; i < 50; i++) await ra.read();
  })();
  await new Promise((r) => setTimeout(r, 50));
  assertEquals(state.read <= 3, true, `read ${state.read} chunks ahead of the slow branch`);
  for (let i = 0; i < 50; i++) await rb.read();
  await reading;
  assertEquals(state.read <= 53, true, `read ${state.read} chunks for 50`);
  await ra.cancel();
});

Deno.test("teeInStep: a cancelled branch cancels the source and errors the other", async () => {
  let cancelled: unknown;
  const src = new ReadableStream<number>({
    pull(c) {
      c.enqueue(1);
    },
    cancel(reason) {
      cancelled = reason;
    },
  });
  const [a, b] = teeInStep(src);
  const rb = b.getReader();
  await a.cancel(new Error("store failed"));
  assertEquals((cancelled as Error).message, "store failed");
  await assertRejects(
    async () => {
      while (!(await rb.read()).done) { /* drain what was queued */ }
    },
    Error,
    "store failed",
  );
});

Deno.test("teeInStep: a source error reaches both branches", async () => {
  let n = 0;
  const src = new ReadableStream<number>({
    pull(c) {
      if (n++ === 3) throw new Error("disk read failed");
      c.enqueue(n);
    },
  });
  const [a, b] = teeInStep(src);
  await Promise.all([
    assertRejects(() => all(a), Error, "disk read failed"),
    assertRejects(() => all(b), Error, "disk read failed"),
  ]);
});
