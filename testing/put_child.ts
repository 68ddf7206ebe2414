/**
 * Test helper process: opens a store from a class spec and puts a generated
 * stream, printing "progress N" lines, then "done <sha256> <vmhwm-kib>".
 * Used by the conformance suite (killed mid-upload) and the memory test.
 *
 *   deno run -A testing/put_child.ts '<{"spec":…,"secret":…}>' <key> <bytes> [slow|fast] [get]
 * @module
 */
import { createStore } from "../storage/factory.ts";
import { drain, generatedStream } from "./storage_conformance.ts";

/** Peak resident set size of this process in KiB (VmHWM). */
export function peakRssKib(): number {
  const m = Deno.readTextFileSync("/proc/self/status").match(/VmHWM:\s+(\d+) kB/);
  return m ? Number(m[1]) : -1;
}

if (import.meta.main) {
  const [config, key, bytes, mode = "fast", andGet] = Deno.args;
  const { spec, secret } = JSON.parse(config);
  const store = createStore(spec, { secret });
  const size = Number(bytes);
  const gen = generatedStream(size);
  let last = 0;
  let body = gen.stream;
  if (mode === "slow") {
    // Slows the producer so a parent can kill this process mid-upload.
    body = body.pipeThrough(
      new TransformStream({
        async transform(chunk, c) {
          await new Promise((r) => setTimeout(r, 20));
          c.enqueue(chunk);
        },
      }),
    );
  }
  const enc = new TextEncoder();
  const info = await store.put(key, body, {
    size,
    onProgress: (n) => {
      if (n - last >= 8 << 20) {
        last = n;
        Deno.stdout.writeSync(enc.encode(`progress ${n}\n`));
      }
    },
  });
  if (info.sha256 !== gen.sha256()) {
    throw new Error(`Digest differs: ${info.sha256} vs ${gen.sha256()}`);
  }
  if (andGet === "get") {
    const back = await drain(await store.get(key));
    if (back.sha256 !== info.sha256) throw new Error(`Read back digest differs: ${back.sha256}`);
  }
  console.log(`done ${info.sha256} ${peakRssKib()}`);
  store.close?.();
  Deno.exit(0);
}
