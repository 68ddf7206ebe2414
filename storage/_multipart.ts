/**
 * The multipart upload loop shared by the S3 (aws-sdk) and MinIO (minio-js)
 * adapters: parts are read from the stream into a small pool of reused
 * buffers and `queueSize` of them are uploaded at once, so memory stays at
 * about `queueSize * partSize` whatever the object size and the network is
 * kept busy while the next part is read. A body that fits in one part goes
 * up in a single request. On failure the upload is aborted.
 * @module
 */

/** The requests of one multipart upload, in the provider's client. */
export interface MultipartRequests {
  /** Uploads a small body in one request. */
  putSingle(body: Uint8Array): Promise<void>;
  /** Starts a multipart upload; resolves with its id. */
  create(): Promise<string>;
  /** Uploads one part; resolves with its ETag. */
  uploadPart(uploadId: string, partNumber: number, body: Uint8Array): Promise<string | undefined>;
  /** Completes the upload from the parts in order. */
  complete(uploadId: string, parts: { partNumber: number; etag?: string }[]): Promise<void>;
  /** Aborts the upload (best effort). */
  abort(uploadId: string): Promise<void>;
}

/** Options of {@linkcode uploadMultipart}. */
export interface MultipartOptions {
  /** Total size when known (sizes the parts). */
  size?: number;
  /** Parts in flight (default 2). */
  queueSize?: number;
  /** Smallest part size (default 8 MiB, at least 5 MiB). */
  partSize?: number;
}

const MIB = 1 << 20;

/** Uploads `body` with `requests`. */
export async function uploadMultipart(
  body: ReadableStream<Uint8Array>,
  requests: MultipartRequests,
  opts: MultipartOptions = {},
): Promise<void> {
  const queueSize = Math.max(1, opts.queueSize ?? 2);
  // Parts grow with the object so 10,000 parts reach far beyond any checkpoint.
  const basePart = Math.max(opts.partSize ?? 8 * MIB, 5 * MIB);
  const partSizeFor = (n: number) =>
    opts.size !== undefined
      ? Math.max(basePart, Math.ceil(opts.size / 9000))
      : basePart * 2 ** Math.floor((n - 1) / 2000);
  const reader = body.getReader();
  let leftover: Uint8Array | undefined;
  let ended = false;
  const fill = async (buf: Uint8Array): Promise<number> => {
    let n = 0;
    while (n < buf.length) {
      let chunk = leftover;
      leftover = undefined;
      if (!chunk) {
        const r = await reader.read();
        if (r.done) {
          ended = true;
          break;
        }
        chunk = r.value;
      }
      const take = Math.min(chunk.length, buf.length - n);
      buf.set(chunk.subarray(0, take), n);
      n += take;
      if (take < chunk.length) leftover = chunk.subarray(take);
    }
    return n;
  };
  const pool: Uint8Array[] = [];
  const first = new Uint8Array(partSizeFor(1));
  const firstLen = await fill(first);
  if (ended) {
    await requests.putSingle(first.subarray(0, firstLen));
    return;
  }
  const uploadId = await requests.create();
  const parts: { partNumber: number; etag?: string }[] = [];
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  try {
    let partNumber = 1;
    let buf: Uint8Array | undefined = first;
    let len = firstLen;
    for (;;) {
      const n = partNumber;
      const part = buf!;
      const task = requests.uploadPart(uploadId, n, part.subarray(0, len)).then((etag) => {
        parts.push({ partNumber: n, etag });
        pool.push(part);
      }, (err) => {
        failure ??= err;
      });
      const tracked: Promise<void> = task.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
      if (ended) break;
      while (inFlight.size >= queueSize && !failure) await Promise.race(inFlight);
      if (failure) throw failure;
      partNumber++;
      const want = partSizeFor(partNumber);
      buf = pool.pop();
      if (!buf || buf.length < want) buf = new Uint8Array(want);
      len = await fill(buf);
      if (len === 0) {
        pool.push(buf);
        break;
      }
    }
    await Promise.all(inFlight);
    if (failure) throw failure;
    parts.sort((a, b) => a.partNumber - b.partNumber);
    await requests.complete(uploadId, parts);
  } catch (err) {
    await reader.cancel(err).catch(() => {});
    await Promise.allSettled(inFlight);
    await requests.abort(uploadId).catch(() => {}); // unreachable server: cleanDebris aborts it later
    throw err;
  }
}
