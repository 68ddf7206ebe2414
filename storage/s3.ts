/**
 * The `s3` provider: any S3-compatible endpoint through `@aws-sdk/client-s3`,
 * with parallel multipart uploads over reused part buffers, a path-style option and a
 * custom CA bundle. Layout and atomicity: see `_bucket_store.ts`.
 * @module
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { Agent as HttpsAgent } from "node:https";
import { Agent as HttpAgent } from "node:http";
import {
  type BucketAdapter,
  type BucketLocation,
  BucketStore,
  classifyS3Error,
} from "./_bucket_store.ts";
import type { StorageError } from "./errors.ts";
import { FILE_RANGE, parallelRangedStream, STREAM_RANGE } from "./_ranged_read.ts";
import { uploadMultipart } from "./_multipart.ts";
import { isPlainHttpLoopback } from "./_endpoint.ts";

/** Parameters of the `s3` provider (`spec.s3` plus credentials). */
export interface S3StoreOptions extends BucketLocation {
  /** Endpoint URL; default AWS for the region. */
  endpoint?: string;
  /** Path-style addressing (`endpoint/bucket/key`), needed by most non-AWS servers. */
  forcePathStyle?: boolean;
  /** Skip TLS verification (tests only). */
  insecureSkipTlsVerify?: boolean;
  /** Access key id; default the SDK's credential chain. */
  accessKeyId?: string;
  /** Secret access key. */
  secretAccessKey?: string;
  /** Multipart part size in bytes (default 8 MiB; grows for very large objects). */
  partSize?: number;
  /** Parts uploaded in parallel (default 2: each buffered part costs memory; uploads stay under 256 MiB RSS). */
  queueSize?: number;
  /** Bytes per ranged GET when reading a large object (default 4 MiB). */
  readRangeSize?: number;
  /**
   * Ranged GETs in flight when reading a large object (default 1: each
   * buffered range costs memory, and reads must stay under 256 MiB RSS).
   */
  readConcurrency?: number;
}

const MIB = 1 << 20;
/** Ranged GETs in flight when reading a large object. */
const READ_CONCURRENCY = 1;

/** Opens a store on an S3 bucket (no request is made until the first call). */
export function createS3Store(opts: S3StoreOptions): BucketStore {
  return new BucketStore(new S3Adapter(opts), { prefix: opts.prefix });
}

class S3Adapter implements BucketAdapter {
  readonly provider = "s3";
  readonly endpoint: string;
  readonly bucket: string;
  readonly client: S3Client;
  readonly #opts: S3StoreOptions;
  readonly #location: string;

  constructor(opts: S3StoreOptions) {
    this.#opts = opts;
    const region = opts.region ?? "us-east-1";
    this.endpoint = opts.endpoint ?? `https://s3.${region}.amazonaws.com`;
    this.bucket = opts.bucket;
    this.#location = `${this.endpoint.replace(/\/+$/, "")}/${opts.bucket}`;
    const agentOpts = { keepAlive: true, maxSockets: 32 };
    this.client = new S3Client({
      endpoint: opts.endpoint,
      region,
      forcePathStyle: opts.forcePathStyle ?? !!opts.endpoint,
      credentials: opts.accessKeyId && opts.secretAccessKey
        ? { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey }
        : undefined,
      // Integrity is ours (sha256 end to end); the SDK's extra CRC32 per request costs CPU.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      maxAttempts: 2,
      requestHandler: {
        connectionTimeout: 10_000,
        httpAgent: new HttpAgent(agentOpts),
        httpsAgent: new HttpsAgent({
          ...agentOpts,
          ca: opts.caBundle,
          rejectUnauthorized: !opts.insecureSkipTlsVerify,
        }),
      },
    });
    this.#skipPayloadSigningOnLoopback();
  }

  /**
   * Over plain HTTP to a loopback endpoint (MinIO beside the agent, or in a
   * test), uploads are sent with `x-amz-content-sha256: UNSIGNED-PAYLOAD`
   * so the SDK does not hash every part a second time just to sign it: the
   * bytes never leave the host, and our own sha256 (computed while writing,
   * stored in the manifest, verified on every read) already guards their
   * integrity. Any other endpoint keeps the SDK's signed payloads.
   */
  #skipPayloadSigningOnLoopback(): void {
    if (!isPlainHttpLoopback(this.#opts.endpoint)) return;
    this.client.middlewareStack.add(
      (next) => (args) => {
        const req = args.request as { headers?: Record<string, string>; body?: unknown };
        if (req.headers && req.body !== undefined && ArrayBuffer.isView(req.body)) {
          req.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD";
        }
        return next(args);
      },
      { step: "build", name: "lpmUnsignedPayloadOnLoopback" },
    );
  }

  /**
   * Multipart upload with a fixed pool of part buffers that are reused, so
   * memory stays at about `queueSize * partSize` whatever the object size
   * (lib-storage's Upload allocates and concatenates per part, and the
   * garbage made a 2 GiB upload peak above 256 MiB RSS). A body that fits in
   * one part goes up as a single PutObject. Either way the object is
   * invisible until complete; a failure aborts the multipart upload.
   */
  async putStream(
    name: string,
    body: ReadableStream<Uint8Array>,
    opts: { size?: number; signal?: AbortSignal },
  ): Promise<void> {
    const Bucket = this.bucket;
    const signal = { abortSignal: opts.signal };
    await uploadMultipart(body, {
      putSingle: async (Body) => {
        await this.client.send(
          new PutObjectCommand({ Bucket, Key: name, Body, ContentLength: Body.length }),
          signal,
        );
      },
      create: async () =>
        (await this.client.send(new CreateMultipartUploadCommand({ Bucket, Key: name }), signal))
          .UploadId!,
      uploadPart: async (UploadId, PartNumber, Body) =>
        (await this.client.send(
          new UploadPartCommand({
            Bucket,
            Key: name,
            UploadId,
            PartNumber,
            Body,
            ContentLength: Body.length,
          }),
          signal,
        )).ETag,
      complete: async (UploadId, parts) => {
        await this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket,
            Key: name,
            UploadId,
            MultipartUpload: {
              Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })),
            },
          }),
          signal,
        );
      },
      abort: async (UploadId) => {
        await this.client.send(new AbortMultipartUploadCommand({ Bucket, Key: name, UploadId }));
      },
    }, { size: opts.size, queueSize: this.#opts.queueSize, partSize: this.#opts.partSize });
  }

  async putEmpty(name: string, meta: Record<string, string>): Promise<void> {
    await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: name,
        Body: new Uint8Array(0),
        Metadata: meta,
      }),
    );
  }

  async head(name: string) {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: name }));
      const meta: Record<string, string> = {};
      for (const [k, v] of Object.entries(r.Metadata ?? {})) meta[k.toLowerCase()] = v;
      return { size: r.ContentLength ?? 0, lastModified: r.LastModified ?? new Date(0), meta };
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw await this.#explainHeadError(err, name);
    }
  }

  /**
   * Streams an object. Objects larger than one range are read as bounded
   * parallel ranged GETs ({@linkcode READ_CONCURRENCY} x {@linkcode FILE_RANGE}
   * in flight), each gathered into its own buffer and emitted in order.
   */
  async getStream(
    name: string,
    signal?: AbortSignal,
    size?: number,
    readAhead?: number,
  ): Promise<ReadableStream<Uint8Array>> {
    const request = async (range: string | undefined, abortSignal?: AbortSignal) => {
      const r = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: name, Range: range }),
        { abortSignal },
      );
      if (!r.Body) throw new Error(`Empty response body for "${name}"`);
      return r.Body.transformToWebStream() as ReadableStream<Uint8Array>;
    };
    const rangeSize = Math.max(
      this.#opts.readRangeSize ?? (readAhead === undefined ? STREAM_RANGE : FILE_RANGE),
      MIB,
    );
    if (size === undefined || size <= rangeSize) return await request(undefined, signal);
    return await parallelRangedStream({
      size,
      rangeSize,
      concurrency: readAhead ?? this.#opts.readConcurrency ?? READ_CONCURRENCY,
      signal,
      fetchRange: (start, end, abortSignal) => request(`bytes=${start}-${end - 1}`, abortSignal),
      mapError: (err) => this.mapError(err, `read "${name}"`),
    });
  }

  async *list(prefix: string) {
    let token: string | undefined;
    do {
      const r = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of r.Contents ?? []) {
        yield { name: o.Key!, size: o.Size ?? 0, lastModified: o.LastModified ?? new Date(0) };
      }
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
  }

  async remove(name: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: name }));
  }

  async *listUploads(prefix: string) {
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    for (;;) {
      const r = await this.client.send(
        // MinIO lists uploads by exact object name only; list them all and filter here.
        new ListMultipartUploadsCommand({
          Bucket: this.bucket,
          KeyMarker: keyMarker,
          UploadIdMarker: idMarker,
        }),
      );
      for (const u of r.Uploads ?? []) {
        if (!u.Key?.startsWith(prefix)) continue;
        yield { name: u.Key!, uploadId: u.UploadId!, initiated: u.Initiated ?? new Date(0) };
      }
      if (!r.IsTruncated) return;
      keyMarker = r.NextKeyMarker;
      idMarker = r.NextUploadIdMarker;
    }
  }

  async abortUpload(name: string, uploadId: string): Promise<void> {
    await this.client.send(
      new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: name, UploadId: uploadId }),
    );
  }

  async bucketExists(): Promise<boolean> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return true;
    } catch (err) {
      if (isMissing(err)) return false;
      throw await this.#explainHeadError(err, "");
    }
  }

  /**
   * HEAD responses carry no error body, so a 403 cannot tell wrong
   * credentials from missing permissions; a one-key listing returns the
   * server's real error code.
   */
  async #explainHeadError(err: unknown, prefix: string): Promise<unknown> {
    if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 403) {
      return err;
    }
    try {
      await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, MaxKeys: 1 }),
      );
    } catch (listErr) {
      return listErr;
    }
    return err;
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
    this.client.destroy();
  }
}

function isMissing(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === "NotFound" || e.name === "NoSuchKey" || e.name === "NoSuchBucket" ||
    e.$metadata?.httpStatusCode === 404;
}
