/** Streaming sha256 and a read-side verifying stream. @module */
import { Sha256Counter } from "../base/sha256.ts";

/**
 * Passes `source` through, hashing it; at its end errors the stream with
 * `mismatch(actual)` instead of closing when the digest or size differs from
 * `expected`. Cancelling the result cancels `source`.
 */
export function verifyingStream(
  source: ReadableStream<Uint8Array>,
  expected: { sha256: string; size: number },
  mismatch: (actual: { sha256: string; size: number }) => Error,
  signal?: AbortSignal,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  const hash = new Sha256Counter();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (signal?.aborted) {
        await reader.cancel(signal.reason).catch(() => {});
        controller.error(signal.reason);
        return;
      }
      const { done, value } = await reader.read();
      if (done) {
        const actual = { sha256: hash.hex(), size: hash.size };
        if (actual.sha256 !== expected.sha256 || actual.size !== expected.size) {
          controller.error(mismatch(actual));
        } else {
          controller.close();
        }
        return;
      }
      hash.update(value);
      controller.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/**
 * Reads the next chunk, or rejects with `abortError()` as soon as `signal`
 * aborts, even while the source is stalled.
 */
export function readOrAbort(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  signal: AbortSignal | undefined,
  abortError: () => Error,
): Promise<ReadableStreamReadResult<Uint8Array>> {
  if (!signal) return reader.read();
  if (signal.aborted) return Promise.reject(abortError());
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(abortError());
    signal.addEventListener("abort", onAbort, { once: true });
    reader.read().then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Wraps `body` in a stream that hashes what passes through, reports
 * progress, and errors with `abortError()` when `signal` aborts. `result()`
 * gives the digest once the stream has ended.
 */
export function hashingStream(
  body: ReadableStream<Uint8Array>,
  opts: { signal?: AbortSignal; onProgress?: (bytes: number) => void; abortError: () => Error },
): { stream: ReadableStream<Uint8Array>; result(): { sha256: string; size: number } } {
  const reader = body.getReader();
  const hash = new Sha256Counter();
  let digest: { sha256: string; size: number } | undefined;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await readOrAbort(reader, opts.signal, opts.abortError);
        if (done) {
          digest = { sha256: hash.hex(), size: hash.size };
          controller.close();
          return;
        }
        hash.update(value);
        controller.enqueue(value);
        opts.onProgress?.(hash.size);
      } catch (err) {
        reader.cancel(err).catch(() => {});
        controller.error(err);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return {
    stream,
    result() {
      if (!digest) throw new Error("The stream has not ended yet");
      return digest;
    },
  };
}
