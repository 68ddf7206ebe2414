/**
 * The `minio` provider: MinIO (or any S3 server) through the `minio`
 * (minio-js) client, with the same object layout as the `s3` provider so
 * either client reads what the other wrote (see `_bucket_store.ts`).
 * @module
 */
import { Client } from "minio";
import { Agent as HttpsAgent } from "node:https";
import { Buffer } from "node:buffer";
import { Readable } from "node:stream";
import {
  type BucketAdapter,
  type BucketLocation,
  BucketStore,
  classifyS3Error,
} from "./_bucket_store.ts";
import type { StorageError } from "./errors.ts";
import { FILE_RANGE, parallelRangedStream, STREAM_RANGE } from "./_ranged_read.ts";
import { isPlainHttpLoopback } from "./_endpoint.ts";
import { uploadMultipart } from "./_multipart.ts";

/** Parameters of the `minio` provider (`spec.minio` plus credentials). */
export interface MinioStoreOptions extends BucketLocation {
  /** Endpoint URL, e.g. "https://minio.example:9000". */
  endpoint: string;
  /** Access key. */
  accessKey: string;
  /** Secret key. */
  secretKey: string;
  /**
   * Multipart part size in bytes (default 8 MiB: with 16 MiB parts the source
   * agent's peak RSS migrating 1 GiB was ~50 MiB higher, at the same speed).
   */
  partSize?: number;
  /** Parts uploaded at once (default 2; memory is about `queueSize * partSize`). */
  queueSize?: number;
}

const MIB = 1 << 20;
/** Ranged GETs in flight when reading a large object. */
const READ_CONCURRENCY = 2;

/** Opens a store on a MinIO bucket (no request is made until the first call). */
export function createMinioStore(opts: MinioStoreOptions): BucketStore {
  return new BucketStore(new MinioAdapter(opts), { prefix: opts.prefix });
}

class MinioAdapter implements BucketAdapter {
  readonly provider = "minio";
  readonly endpoint: string;
  readonly bucket: string;
  readonly client: Client;
  readonly #location: string;
  readonly #partSize: number;
  readonly #queueSize: number;

  constructor(opts: MinioStoreOptions) {
    let url: URL;
    try {
      url = new URL(opts.endpoint);
    } catch {
      throw new Error(
        `Invalid MinIO endpoint "${opts.endpoint}": expected a URL like "https://host:9000"`,
      );
    }
    const useSSL = url.protocol === "https:";
    this.endpoint = opts.endpoint;
    this.bucket = opts.bucket;
    this.#location = `${opts.endpoint.replace(/\/+$/, "")}/${opts.bucket}`;
    this.#partSize = Math.max(opts.partSize ?? 8 * MIB, 5 * MIB);
    this.#queueSize = Math.max(1, opts.queueSize ?? 2);
    this.client = new Client({
      endPoint: url.hostname.replace(/^\[|\]$/g, ""),
      port: url.port ? Number(url.port) : useSSL ? 443 : 80,
      useSSL,
      accessKey: opts.accessKey,
      secretKey: opts.secretKey,
      region: opts.region ?? "us-east-1",
      pathStyle: true,
      partSize: this.#partSize,
      transportAgent: useSSL && opts.caBundle
        ? new HttpsAgent({ ca: opts.caBundle, keepAlive: true })
        : undefined,
    });
    // Over plain HTTP minio-js hashes every part with sha256 just to sign it (on
    // top of its md5). On a loopback endpoint the bytes never leave the host and
    // our own sha256 (stored in the manifest, verified on every read) guards
    // them, so sign UNSIGNED-PAYLOAD there as minio-js already does over HTTPS.
    if (isPlainHttpLoopback(opts.endpoint)) {
      (this.client as unknown as { enableSHA256: boolean }).enableSHA256 = false;
    }
  }

  async putStream(
    name: string,
    body: ReadableStream<Uint8Array>,
    opts: { size?: number; signal?: AbortSignal },
  ): Promise<void> {
    // Our own multipart loop (minio-js's putObject uploads one part at a time).
    const bucket = this.bucket;
    const asBuffer = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    await uploadMultipart(body, {
      putSingle: async (b) => {
        await this.client.putObject(bucket, name, asBuffer(b), b.length);
      },
      create: () => this.client.initiateNewMultipartUpload(bucket, name, {}),
      uploadPart: async (uploadID, partNumber, b) =>
        (await this.client.uploadPart(
          { bucketName: bucket, objectName: name, uploadID, partNumber, headers: {} },
          asBuffer(b),
        )).etag,
      complete: async (uploadId, parts) => {
        await this.client.completeMultipartUpload(
          bucket,
          name,
          uploadId,
          parts.map((p) => ({ part: p.partNumber, etag: p.etag })),
        );
      },
      abort: (uploadId) => this.client.abortMultipartUpload(bucket, name, uploadId),
    }, { size: opts.size, queueSize: this.#queueSize, partSize: this.#partSize });
  }

  async putEmpty(name: string, meta: Record<string, string>): Promise<void> {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(meta)) headers[`x-amz-meta-${k}`] = v;
    await this.client.putObject(this.bucket, name, Buffer.alloc(0), 0, headers);
  }

  async head(name: string) {
    try {
      const r = await this.client.statObject(this.bucket, name);
      const meta: Record<string, string> = {};
      for (const [k, v] of Object.entries(r.metaData ?? {})) meta[k.toLowerCase()] = String(v);
      return { size: r.size, lastModified: r.lastModified, meta };
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw await this.#explainHeadError(err, name);
    }
  }

  /**
   * HEAD responses carry no error body, so MinIO's 403 reads as AccessDenied
   * even for wrong credentials; a one-key listing returns the real code.
   */
  async #explainHeadError(err: unknown, prefix: string): Promise<unknown> {
    if ((err as { code?: string }).code !== "AccessDenied") return err;
    try {
      await new Promise<void>((resolve, reject) => {
        const s = this.client.listObjectsV2(this.bucket, prefix, false);
        s.once("data", () => {
          s.destroy();
          resolve();
        });
        s.once("end", () => resolve());
        s.once("error", reject);
      });
    } catch (listErr) {
      return listErr;
    }
    return err;
  }

  /**
   * Streams an object. Objects larger than one range are read as bounded
   * parallel ranged GETs (`getPartialObject`), emitted in order.
   */
  async getStream(
    name: string,
    signal?: AbortSignal,
    size?: number,
    readAhead?: number,
  ): Promise<ReadableStream<Uint8Array>> {
    const rangeSize = readAhead === undefined ? STREAM_RANGE : FILE_RANGE;
    if (size !== undefined && size > rangeSize) {
      return await parallelRangedStream({
        size,
        rangeSize,
        concurrency: readAhead ?? READ_CONCURRENCY,
        signal,
        fetchRange: async (start, end, abortSignal) => {
          const node = await this.client.getPartialObject(this.bucket, name, start, end - start);
          const onAbort = () => node.destroy(abortSignal.reason);
          abortSignal.addEventListener("abort", onAbort, { once: true });
          node.once("close", () => abortSignal.removeEventListener("abort", onAbort));
          return node as AsyncIterable<Uint8Array>;
        },
        mapError: (err) => this.mapError(err, `read "${name}"`),
      });
    }
    const node = await this.client.getObject(this.bucket, name);
    if (signal) {
      const onAbort = () => node.destroy(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      node.once("close", () => signal.removeEventListener("abort", onAbort));
    }
    return Readable.toWeb(node) as unknown as ReadableStream<Uint8Array>;
  }

  async *list(prefix: string) {
    const stream = this.client.listObjectsV2(this.bucket, prefix, true);
    for await (
      const o of stream as AsyncIterable<{ name?: string; size: number; lastModified: Date }>
    ) {
      if (o.name) yield { name: o.name, size: o.size, lastModified: o.lastModified };
    }
  }

  async remove(name: string): Promise<void> {
    await this.client.removeObject(this.bucket, name);
  }

  async *listUploads(prefix: string) {
    // MinIO lists uploads by exact object name only; list them all and filter here.
    const stream = this.client.listIncompleteUploads(this.bucket, "", true);
    for await (
      const u of stream as AsyncIterable<{ key: string; uploadId: string; initiated?: Date }>
    ) {
      if (!u.key.startsWith(prefix)) continue;
      yield { name: u.key, uploadId: u.uploadId, initiated: u.initiated ?? new Date(0) };
    }
  }

  async abortUpload(name: string, uploadId: string): Promise<void> {
    await this.client.abortMultipartUpload(this.bucket, name, uploadId);
  }

  async bucketExists(): Promise<boolean> {
    try {
      return await this.client.bucketExists(this.bucket);
    } catch (err) {
      throw await this.#explainHeadError(err, "");
    }
  }

  async presign(name: string, ttlMs: number): Promise<string> {
    return await this.client.presignedGetObject(
      this.bucket,
      name,
      Math.max(1, Math.round(ttlMs / 1000)),
    );
  }

  mapError(err: unknown, what: string, key?: string): StorageError {
    return classifyS3Error(err, {
      provider: this.provider,
      endpoint: this.endpoint,
      bucket: this.bucket,
      location: this.#location,
      what,
      key,
    });
  }

  close(): void {
    // minio-js keeps no closable resources beyond the global agent's idle sockets.
  }
}

function isMissing(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === "NotFound" || code === "NoSuchKey";
}
