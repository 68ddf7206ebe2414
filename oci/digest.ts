/**
 * Streaming sha256 digests (never a whole blob in memory).
 * @module
 */
import { Sha256Counter, sha256Hex } from "../base/sha256.ts";

/** A pass-through stream that hashes and counts what flows through it. */
export class DigestStream extends TransformStream<Uint8Array, Uint8Array> {
  #hash = new Sha256Counter();
  #hex?: string;
  /** Creates the stream. */
  constructor() {
    super({
      transform: (chunk, ctl) => {
        this.#hash.update(chunk);
        ctl.enqueue(chunk);
      },
    });
  }
  /** Bytes seen so far. */
  get size(): number {
    return this.#hash.size;
  }
  /** `sha256:<hex>` of everything seen (call after the stream ended). */
  get digest(): string {
    this.#hex ??= this.#hash.hex();
    return `sha256:${this.#hex}`;
  }
}

/** `sha256:<hex>` of bytes. */
export function digestBytes(bytes: Uint8Array): string {
  return `sha256:${sha256Hex(bytes)}`;
}

/** `sha256:<hex>` and size of a file, streamed. */
export async function digestFile(path: string): Promise<{ digest: string; size: number }> {
  const d = new DigestStream();
  const f = await Deno.open(path);
  await f.readable.pipeThrough(d).pipeTo(new WritableStream());
  return { digest: d.digest, size: d.size };
}

/** Checks a digest string's form; returns its hex part. */
export function digestHex(digest: string): string {
  const m = /^sha256:([a-f0-9]{64})$/.exec(digest);
  if (!m) throw new Error(`Unsupported or malformed digest "${digest}" (want sha256:<64 hex>)`);
  return m[1];
}

/**
 * A file as a stream of 1 MiB chunks from `offset` (Deno's default 64 KiB
 * chunks cost measurably more per GiB in the hash and upload pipelines).
 */
export async function fileStream(
  path: string,
  opts: { offset?: number; chunkSize?: number } = {},
): Promise<ReadableStream<Uint8Array>> {
  const f = await Deno.open(path);
  if (opts.offset) await f.seek(opts.offset, Deno.SeekMode.Start);
  const size = opts.chunkSize ?? 1 << 20;
  return new ReadableStream<Uint8Array>({
    type: "bytes",
    async pull(ctl) {
      const buf = new Uint8Array(size);
      let got = 0;
      while (got < size) {
        const n = await f.read(buf.subarray(got));
        if (n === null) break;
        got += n;
      }
      if (got > 0) ctl.enqueue(buf.subarray(0, got));
      if (got < size) {
        f.close();
        ctl.close();
      }
    },
    cancel() {
      f.close();
    },
  });
}
