/**
 * Test helper of `encryption_test.ts` (run as its own process, so that its
 * peak RSS is its own and not the test runner's, which other test files share):
 * streams `--mib` MiB through `encryptStream` then `decryptStream` and prints
 * `{"bytes", "rss0", "peak"}` (bytes) on stdout.
 * @module
 */
import { decryptStream, encryptStream, importEncryptionKey } from "./encryption.ts";

if (import.meta.main) {
  const mib = Number(Deno.args[Deno.args.indexOf("--mib") + 1] ?? 512);
  const key = await importEncryptionKey("k1", crypto.getRandomValues(new Uint8Array(32)));
  const ring = { active: key, byId: new Map([[key.id, key]]) };
  const total = mib << 20;
  const block = new Uint8Array(1 << 20).fill(0x5a);
  let sent = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent >= total) return c.close();
      c.enqueue(block.slice());
      sent += block.length;
    },
  }, { highWaterMark: 1 });
  const rss0 = Deno.memoryUsage().rss;
  let peak = rss0;
  let bytes = 0;
  await source.pipeThrough(encryptStream(ring)).pipeThrough(decryptStream(ring)).pipeTo(
    new WritableStream({
      write(c) {
        bytes += c.length;
        if ((bytes & ((32 << 20) - 1)) === 0) peak = Math.max(peak, Deno.memoryUsage().rss);
      },
    }),
  );
  console.log(JSON.stringify({ bytes, rss0, peak }));
}
