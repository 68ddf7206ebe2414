/**
 * Large-chunk, overlapped file I/O for the filesystem store: writes gather the
 * incoming stream into a few big buffers so that hashing one buffer overlaps
 * the write of the previous one, and reads keep one big read (and its hashing)
 * ahead of the consumer. Memory stays at a few chunks whatever the file size.
 * @module
 */
import { Sha256Counter } from "../base/sha256.ts";
import { readOrAbort } from "./_digest.ts";

/**
 * Chunk size of filesystem writes and of the archive streamed to the store
 * and the registry ({@linkcode fileChunkStream}). 2 MiB: with 8 MiB chunks
 * (and MinIO parts of 16 MiB) the source agent's peak RSS migrating 1 GiB
 * was 270 MiB, with 2 MiB (and 8 MiB parts) 219 MiB, the downtime the same
 * (`deno task bench migration --sizes 1024`, side by side, 2026-11-30).
 */
export const FS_CHUNK = 2 << 20;

/**
 * Chunk size of verified filesystem reads (A/B on this machine: 8 MiB chunks
 * read slower than 1 MiB ones once the consumer writes them to a file).
 */
export const FS_READ_CHUNK = 1 << 20;

/** Options for {@linkcode writeHashed}. */
export interface WriteHashedOptions {
  /** Aborts the copy. */
  signal?: AbortSignal;
  /** The error to throw when `signal` aborts. */
  abortError: () => Error;
  /** Maps a write failure to the error to throw. */
  writeError: (err: unknown) => Error;
  /** Called with the bytes received so far. */
  onProgress?: (bytes: number) => void;
  /** Buffer size; default {@linkcode FS_CHUNK}. */
  chunkSize?: number;
}

/**
 * Copies `reader` into `file`, hashing on the way, and returns the digest and
 * size. Two buffers alternate: one is filled and hashed while the other is
 * being written. Never leaves a write in flight when it returns or throws.
 */
export async function writeHashed(
  file: Deno.FsFile,
  reader: ReadableStreamDefaultReader<Uint8Array>,
  opts: WriteHashedOptions,
): Promise<Sha256Counter> {
  const size = opts.chunkSize ?? FS_CHUNK;
  const hash = new Sha256Counter();
  const buffers = [new Uint8Array(size), new Uint8Array(size)];
  let which = 0;
  let pending: Promise<void> | undefined;
  let leftover: Uint8Array | undefined;
  let nextRead: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;
  let ended = false;
  try {
    while (!ended) {
      const buf = buffers[which];
      let n = 0;
      while (n < size) {
        let chunk = leftover;
        leftover = undefined;
        if (!chunk) {
          const r = await (nextRead ?? readOrAbort(reader, opts.signal, opts.abortError));
          nextRead = undefined;
          if (r.done) {
            ended = true;
            break;
          }
          // Ask the source for the next chunk before hashing this one, so its I/O overlaps.
          nextRead = readOrAbort(reader, opts.signal, opts.abortError);
          nextRead.catch(() => {}); // surfaced when awaited
          chunk = r.value;
          hash.update(chunk);
          opts.onProgress?.(hash.size);
        }
        const take = Math.min(chunk.length, size - n);
        buf.set(take === chunk.length ? chunk : chunk.subarray(0, take), n);
        n += take;
        if (take < chunk.length) leftover = chunk.subarray(take);
      }
      if (pending) await pending;
      pending = undefined;
      if (n > 0) {
        pending = writeAll(file, buf.subarray(0, n)).catch((e) => {
          throw opts.writeError(e);
        });
        which ^= 1;
      }
    }
    if (pending) await pending;
    pending = undefined;
    return hash;
  } finally {
    await pending?.catch(() => {});
  }
}

/** Writes all of `data` (a single write may be partial). */
export async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await file.write(data.subarray(off));
}

/** Options for {@linkcode verifiedFileStream}. */
export interface VerifiedFileStreamOptions {
  /** The digest and size the file must have. */
  expected: { sha256: string; size: number };
  /** The error reported at the end when the content differs from `expected`. */
  mismatch: (actual: { sha256: string; size: number }) => Error;
  /** Maps a read failure to the error the stream reports. */
  readError: (err: unknown) => Error;
  /** Aborts the read. */
  signal?: AbortSignal;
  /** Chunk size; default {@linkcode FS_READ_CHUNK}. */
  chunkSize?: number;
}

/**
 * A stream of `file`'s bytes in big chunks, verified against a sha256. The
 * next chunk is read and hashed ahead while the consumer handles the current
 * one (its own write runs in the I/O pool meanwhile), so hashing overlaps the
 * consumer's I/O. The last chunk is only released once the whole content has
 * matched: a mismatch errors the stream instead of closing it. Closes the file
 * at the end, on error and on cancel.
 */
export function verifiedFileStream(
  file: Deno.FsFile,
  opts: VerifiedFileStreamOptions,
): ReadableStream<Uint8Array> {
  const chunkSize = opts.chunkSize ?? FS_READ_CHUNK;
  const hash = new Sha256Counter();
  let closed = false;
  let ahead: Promise<Uint8Array | null> | undefined;
  const close = async () => {
    if (closed) return;
    closed = true;
    await ahead?.catch(() => {}); // never close under a read in flight
    file.close();
  };
  const readChunk = async (): Promise<Uint8Array | null> => {
    const buf = new Uint8Array(chunkSize);
    let n = 0;
    while (n < buf.length) {
      const got = await file.read(buf.subarray(n));
      if (got === null) break;
      n += got;
    }
    if (n === 0) return null;
    const chunk = n === buf.length ? buf : buf.subarray(0, n);
    hash.update(chunk);
    return chunk;
  };
  const mismatch = (): Error | undefined => {
    const actual = { sha256: hash.hex(), size: hash.size };
    return actual.sha256 !== opts.expected.sha256 || actual.size !== opts.expected.size
      ? opts.mismatch(actual)
      : undefined;
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (opts.signal?.aborted) {
        await close();
        controller.error(opts.signal.reason);
        return;
      }
      let chunk: Uint8Array | null;
      try {
        chunk = await (ahead ?? readChunk());
        ahead = undefined;
        if (chunk !== null && chunk.length === chunkSize) {
          ahead = readChunk();
          ahead.catch(() => {}); // surfaced by the next pull
        }
      } catch (e) {
        ahead = undefined;
        await close();
        controller.error(opts.readError(e));
        return;
      }
      if (chunk !== null && ahead) {
        controller.enqueue(chunk);
        return;
      }
      // End of file: this is the last chunk (or none); release it only if all matched.
      await close();
      const bad = mismatch();
      if (bad) {
        controller.error(bad);
        return;
      }
      if (chunk !== null) controller.enqueue(chunk);
      controller.close();
    },
    cancel: close,
  }, { highWaterMark: 0 });
}

/** Options for {@linkcode hashFile}. */
export interface HashFileOptions {
  /** Aborts the read (the hash then covers a prefix; callers check the signal). */
  signal?: AbortSignal;
  /** Called with the bytes hashed so far. */
  onProgress?: (bytes: number) => void;
  /** Maps a read failure to the error to throw. */
  readError: (err: unknown) => Error;
}

/**
 * Reads `path` in big chunks and hashes it; the next read is in flight while
 * a chunk is hashed, so the read I/O overlaps the hashing.
 */
export async function hashFile(path: string, opts: HashFileOptions): Promise<Sha256Counter> {
  const hash = new Sha256Counter();
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    throw opts.readError(e);
  }
  const bufs = [new Uint8Array(FS_CHUNK), new Uint8Array(FS_CHUNK)];
  let which = 0;
  const readInto = async (buf: Uint8Array): Promise<number> => {
    let n = 0;
    while (n < buf.length) {
      const got = await file.read(buf.subarray(n));
      if (got === null) break;
      n += got;
    }
    return n;
  };
  try {
    let next = readInto(bufs[which]);
    while (!opts.signal?.aborted) {
      const n = await next;
      if (n === 0) break;
      const buf = bufs[which];
      which ^= 1;
      next = n === FS_CHUNK ? readInto(bufs[which]) : Promise.resolve(0);
      next.catch(() => {}); // surfaced when awaited
      hash.update(buf.subarray(0, n));
      opts.onProgress?.(hash.size);
    }
    await next.catch(() => {});
  } catch (e) {
    throw opts.readError(e);
  } finally {
    file.close();
  }
  return hash;
}

/**
 * The bytes of the file at `path` as a stream of big chunks (default
 * {@linkcode FS_CHUNK}), each read into a fresh buffer (consumers may keep
 * them), with one read ahead. Closes the file at the end, on error and on
 * cancel.
 */
export async function fileChunkStream(
  path: string,
  chunkSize = FS_CHUNK,
): Promise<ReadableStream<Uint8Array>> {
  const file = await Deno.open(path, { read: true });
  let closed = false;
  let ahead: Promise<Uint8Array | null> | undefined;
  const close = async () => {
    if (closed) return;
    closed = true;
    await ahead?.catch(() => {});
    file.close();
  };
  const readChunk = async (): Promise<Uint8Array | null> => {
    const buf = new Uint8Array(chunkSize);
    let n = 0;
    while (n < buf.length) {
      const got = await file.read(buf.subarray(n));
      if (got === null) break;
      n += got;
    }
    return n === 0 ? null : n === buf.length ? buf : buf.subarray(0, n);
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const chunk = await (ahead ?? readChunk());
        ahead = undefined;
        if (chunk === null) {
          await close();
          controller.close();
          return;
        }
        if (chunk.length === chunkSize) {
          ahead = readChunk();
          ahead.catch(() => {}); // surfaced by the next pull
        }
        controller.enqueue(chunk);
      } catch (e) {
        ahead = undefined;
        await close();
        controller.error(e);
      }
    },
    cancel: close,
  }, { highWaterMark: 0 });
}
