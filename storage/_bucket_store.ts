/**
 * The object-store layout shared by the `s3` and `minio` providers, so both
 * clients read and write the same objects.
 *
 * Layout under the class prefix:
 * - `<key>`: a zero-byte manifest whose user metadata holds
 *   `x-amz-meta-lpm-sha256`, `-lpm-size`, `-lpm-blob` (the data's id),
 *   `-lpm-published` and `-lpm-meta` (the user metadata, URI-encoded JSON);
 * - `.lpm-data/<key>/<blob-id>`: the bytes, uploaded with multipart.
 *
 * Why a manifest: a sha256 computed while streaming is only known at the end,
 * while S3 fixes an object's metadata when its upload starts; rewriting the
 * data by a server-side copy would double the write. A multipart upload
 * (or single PUT) is itself invisible until complete, and the manifest PUT is
 * atomic, so the manifest is the commit point: a killed writer leaves an
 * incomplete multipart upload or an unreferenced blob, neither of which
 * lists, and {@linkcode BucketStore.cleanDebris} aborts/removes them. An
 * overwrite uploads a new blob, switches the manifest, then removes the old
 * blob, so a failed put never harms the previous version.
 * @module
 */
import type {
  CheckpointStore,
  GetOptions,
  ListOptions,
  ObjectInfo,
  PutOptions,
  SignedUrlOptions,
} from "./backend.ts";
import { describeCause, StorageError, type StorageErrorCode } from "./errors.ts";
import { fileChunkStream, writeHashed } from "./_fs_io.ts";
import { keyProblem } from "./keys.ts";
import { isSha256Hex } from "../base/sha256.ts";
import { hashingStream, verifyingStream } from "./_digest.ts";

/** Where a bucket store's objects live: the options both providers share. */
export interface BucketLocation {
  /** Bucket name. */
  bucket: string;
  /** Region; default "us-east-1". */
  region?: string;
  /** Key prefix inside the bucket. */
  prefix?: string;
  /** PEM CA bundle trusted for the endpoint's TLS certificate. */
  caBundle?: string;
}

/** Folder (under the class prefix) that holds the data blobs. */
export const DATA_DIR = ".lpm-data/";

/** What a provider's client must do for {@linkcode BucketStore}. Names are full object names. */
export interface BucketAdapter {
  /** Provider name. */
  readonly provider: string;
  /** Endpoint URL (for messages). */
  readonly endpoint: string;
  /** Bucket name. */
  readonly bucket: string;
  /** Uploads a stream; the object must be invisible until the upload completes. */
  putStream(
    name: string,
    body: ReadableStream<Uint8Array>,
    opts: { size?: number; signal?: AbortSignal },
  ): Promise<void>;
  /** Writes a zero-byte object with user metadata (keys without `x-amz-meta-`). */
  putEmpty(name: string, meta: Record<string, string>): Promise<void>;
  /** Size, time and lowercase user metadata of an object, or undefined when missing. */
  head(
    name: string,
  ): Promise<{ size: number; lastModified: Date; meta: Record<string, string> } | undefined>;
  /**
   * Streams an object's bytes; `readAhead` asks for more ranged requests in
   * flight than the adapter's default (a caller that does not hold the data).
   */
  getStream(
    name: string,
    signal?: AbortSignal,
    size?: number,
    readAhead?: number,
  ): Promise<ReadableStream<Uint8Array>>;
  /** Every object under `prefix`. */
  list(prefix: string): AsyncIterable<{ name: string; size: number; lastModified: Date }>;
  /** Removes an object (missing is fine). */
  remove(name: string): Promise<void>;
  /** Incomplete multipart uploads under `prefix`. */
  listUploads(prefix: string): AsyncIterable<{ name: string; uploadId: string; initiated: Date }>;
  /** Aborts an incomplete multipart upload. */
  abortUpload(name: string, uploadId: string): Promise<void>;
  /** Whether the bucket exists. */
  bucketExists(): Promise<boolean>;
  /** A presigned GET URL. */
  presign?(name: string, ttlMs: number): Promise<string>;
  /** Maps a client error to a StorageError (`what` says what was being done). */
  mapError(err: unknown, what: string, key?: string): StorageError;
  /** Releases sockets. */
  close(): void;
}

/** Options for {@linkcode BucketStore}. */
export interface BucketStoreOptions {
  /** Key prefix inside the bucket ("" or ending with "/"). */
  prefix?: string;
}

/** A {@linkcode CheckpointStore} over an S3-compatible bucket. */
export class BucketStore implements CheckpointStore {
  /** Provider name. */
  readonly provider: string;
  /** endpoint/bucket/prefix. */
  readonly location: string;
  /** Prefix inside the bucket. */
  readonly prefix: string;
  /** The provider client adapter. */
  readonly adapter: BucketAdapter;

  /** Builds the store over `adapter`. */
  constructor(adapter: BucketAdapter, opts: BucketStoreOptions = {}) {
    this.adapter = adapter;
    this.provider = adapter.provider;
    const p = (opts.prefix ?? "").replace(/^\/+/, "");
    this.prefix = p === "" || p.endsWith("/") ? p : `${p}/`;
    this.location = `${adapter.endpoint.replace(/\/+$/, "")}/${adapter.bucket}/${this.prefix}`;
  }

  /** Full object name of the data blob `id` of `key`. */
  blobName(key: string, id: string): string {
    return `${this.prefix}${DATA_DIR}${key}/${id}`;
  }

  async put(
    key: string,
    body: ReadableStream<Uint8Array>,
    opts: PutOptions = {},
  ): Promise<ObjectInfo> {
    try {
      this.#checkKey(key);
      if (opts.sha256 !== undefined && !isSha256Hex(opts.sha256)) {
        throw this.#error(
          "InvalidKey",
          `Cannot store "${key}": expected sha256 "${opts.sha256}" is not 64 lowercase hex digits`,
          key,
        );
      }
    } catch (err) {
      await body.cancel().catch(() => {});
      throw err;
    }
    const blobId = crypto.randomUUID();
    const blob = this.blobName(key, blobId);
    const aborted = () =>
      new StorageError(
        "Aborted",
        `Storing "${key}" at "${this.location}" was aborted; nothing was published [provider ${this.provider}]`,
        {
          provider: this.provider,
          location: this.location,
          key,
          cause: opts.signal?.reason,
        },
      );
    const hashed = hashingStream(body, {
      signal: opts.signal,
      onProgress: opts.onProgress,
      abortError: aborted,
    });
    try {
      await this.adapter.putStream(blob, hashed.stream, { size: opts.size, signal: opts.signal });
    } catch (err) {
      await hashed.stream.cancel(err).catch(() => {});
      if (opts.signal?.aborted) throw aborted();
      if (err instanceof StorageError) throw err;
      throw this.adapter.mapError(err, `upload the data of "${key}"`, key);
    }
    let digest: { sha256: string; size: number };
    try {
      digest = hashed.result();
      if (opts.signal?.aborted) throw aborted();
      if (opts.size !== undefined && opts.size !== digest.size) {
        throw this.#error(
          "SizeMismatch",
          `Cannot store "${key}" at "${this.location}": received ${digest.size} bytes, expected ${opts.size}; nothing was published`,
          key,
        );
      }
      if (opts.sha256 !== undefined && opts.sha256 !== digest.sha256) {
        throw this.#error(
          "DigestMismatch",
          `Cannot store "${key}" at "${this.location}": content sha256 "${digest.sha256}" differs from the expected "${opts.sha256}"; nothing was published`,
          key,
        );
      }
    } catch (err) {
      await this.adapter.remove(blob).catch(() => {});
      throw err;
    }
    const old = await this.#headManifest(key).catch(() => undefined);
    const publishedAt = new Date().toISOString();
    const metadata = { ...opts.metadata };
    try {
      await this.adapter.putEmpty(this.prefix + key, {
        "lpm-sha256": digest.sha256,
        "lpm-size": String(digest.size),
        "lpm-blob": blobId,
        "lpm-published": publishedAt,
        "lpm-meta": encodeURIComponent(JSON.stringify(metadata)),
      });
    } catch (err) {
      await this.adapter.remove(blob).catch(() => {});
      throw this.adapter.mapError(err, `publish "${key}"`, key);
    }
    if (old && old.blob !== blobId) {
      // The previous version's bytes; if this fails, cleanDebris removes them later.
      await this.adapter.remove(this.blobName(key, old.blob)).catch(() => {});
    }
    return {
      key,
      size: digest.size,
      sha256: digest.sha256,
      lastModified: new Date(publishedAt),
      metadata,
    };
  }

  /**
   * Stores the file at `path`: `put` of the file read in big chunks with
   * one read ahead (fewer, larger parts of work than a 64 KiB stream).
   */
  async putFile(key: string, path: string, opts: PutOptions = {}): Promise<ObjectInfo> {
    const size = opts.size ?? (await Deno.stat(path)).size;
    return await this.put(key, await fileChunkStream(path), { ...opts, size });
  }

  /** The unverified data stream of `key` and its manifest info (NotFound when absent). */
  async #openRaw(
    key: string,
    signal?: AbortSignal,
    readAhead?: number,
  ): Promise<{ raw: ReadableStream<Uint8Array>; info: ObjectInfo }> {
    this.#checkKey(key);
    for (let attempt = 0;; attempt++) {
      const m = await this.#headManifest(key);
      if (!m) throw await this.#notFound(key);
      try {
        const raw = await this.adapter.getStream(
          this.blobName(key, m.blob),
          signal,
          m.info.size,
          readAhead,
        );
        return { raw, info: m.info };
      } catch (err) {
        const e = this.adapter.mapError(err, `read "${key}"`, key);
        // An overwrite may have replaced the blob between the two requests: look again once.
        if (e.code === "NotFound" && attempt === 0) continue;
        if (e.code === "NotFound") {
          throw this.#error(
            "NotFound",
            `Object "${key}" at "${this.location}" has a manifest but its data "${
              this.blobName(key, m.blob)
            }" is missing`,
            key,
          );
        }
        throw e;
      }
    }
  }

  #corrupt(key: string, info: ObjectInfo, actual: { sha256: string; size: number }): StorageError {
    return this.#error(
      "DigestMismatch",
      `Object "${key}" at "${this.location}" is corrupt: stored sha256 "${info.sha256}" ` +
        `(${info.size} bytes) but the data reads as sha256 "${actual.sha256}" (${actual.size} bytes)`,
      key,
    );
  }

  async get(key: string, opts: GetOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const { raw, info } = await this.#openRaw(key, opts.signal);
    return verifyingStream(raw, info, (actual) => this.#corrupt(key, info, actual), opts.signal);
  }

  /**
   * Downloads the object into `dest` through a temp file beside it, written
   * in big chunks with the hashing overlapped; renamed into place only when
   * size and sha256 match the manifest (not fsynced: a restore's scratch copy).
   */
  async getToFile(key: string, dest: string, opts: GetOptions = {}): Promise<ObjectInfo> {
    // Each range goes to disk at once, so more of them can be in flight (memory ~3 ranges).
    const { raw, info } = await this.#openRaw(key, opts.signal, 3);
    const tmp = `${dest}.lpm-tmp-${crypto.randomUUID()}`;
    const reader = raw.getReader();
    try {
      const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
      let hash;
      try {
        hash = await writeHashed(file, reader, {
          signal: opts.signal,
          abortError: () =>
            this.#error("Aborted", `Reading "${key}" at "${this.location}" was aborted`, key),
          writeError: (e) =>
            new StorageError(
              e instanceof Deno.errors.PermissionDenied ? "PermissionDenied" : "Unknown",
              `Cannot write "${tmp}" while reading "${key}": ${describeCause(e)}`,
              { provider: this.provider, location: this.location, key, cause: e },
            ),
        });
      } finally {
        file.close();
      }
      const actual = { sha256: hash.hex(), size: hash.size };
      if (actual.sha256 !== info.sha256 || actual.size !== info.size) {
        throw this.#corrupt(key, info, actual);
      }
      await Deno.rename(tmp, dest);
      return info;
    } catch (err) {
      await reader.cancel(err).catch(() => {});
      throw err;
    } finally {
      reader.releaseLock();
      await Deno.remove(tmp).catch(() => {});
    }
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    this.#checkKey(key);
    const m = await this.#headManifest(key);
    if (!m) {
      if (!(await this.#bucketExists())) throw this.#missingBucket(`stat "${key}"`);
      return undefined;
    }
    return m.info;
  }

  async *list(prefix: string, opts: ListOptions = {}): AsyncIterable<ObjectInfo> {
    const names: string[] = [];
    try {
      for await (const o of this.adapter.list(this.prefix + prefix)) {
        if (opts.signal?.aborted) throw opts.signal.reason;
        const key = o.name.slice(this.prefix.length);
        if (o.size === 0 && keyProblem(key) === undefined) names.push(key);
      }
    } catch (err) {
      throw this.adapter.mapError(err, `list "${prefix}"`);
    }
    names.sort();
    for (const key of names) {
      const m = await this.#headManifest(key);
      if (m) yield m.info;
    }
  }

  async delete(key: string): Promise<void> {
    this.#checkKey(key);
    const m = await this.#headManifest(key);
    try {
      await this.adapter.remove(this.prefix + key);
      if (m) await this.adapter.remove(this.blobName(key, m.blob));
    } catch (err) {
      throw this.adapter.mapError(err, `delete "${key}"`, key);
    }
  }

  async createSignedUrl(key: string, opts: SignedUrlOptions): Promise<string> {
    if (!this.adapter.presign) {
      throw this.#error(
        "InvalidConfig",
        `Provider "${this.provider}" cannot make signed URLs`,
        key,
      );
    }
    const m = await this.#headManifest(key);
    if (!m) throw await this.#notFound(key);
    try {
      return await this.adapter.presign(this.blobName(key, m.blob), opts.ttlMs);
    } catch (err) {
      throw this.adapter.mapError(err, `sign a URL for "${key}"`, key);
    }
  }

  async cleanDebris(opts: { graceMs: number; signal?: AbortSignal }): Promise<number> {
    const cutoff = Date.now() - opts.graceMs;
    const dataPrefix = this.prefix + DATA_DIR;
    let removed = 0;
    try {
      for await (const u of this.adapter.listUploads(dataPrefix)) {
        if (opts.signal?.aborted) throw opts.signal.reason;
        if (u.initiated.getTime() < cutoff) {
          await this.adapter.abortUpload(u.name, u.uploadId);
          removed++;
        }
      }
      const blobs: { name: string; lastModified: Date }[] = [];
      for await (const o of this.adapter.list(dataPrefix)) blobs.push(o);
      for (const b of blobs) {
        if (opts.signal?.aborted) throw opts.signal.reason;
        if (b.lastModified.getTime() >= cutoff) continue;
        const rel = b.name.slice(dataPrefix.length);
        const slash = rel.lastIndexOf("/");
        const key = rel.slice(0, slash);
        const id = rel.slice(slash + 1);
        const m = keyProblem(key) === undefined ? await this.#headManifest(key) : undefined;
        if (m?.blob !== id) {
          await this.adapter.remove(b.name);
          removed++;
        }
      }
    } catch (err) {
      throw this.adapter.mapError(err, "clean incomplete uploads");
    }
    return removed;
  }

  close(): void {
    this.adapter.close();
  }

  async #headManifest(key: string): Promise<{ info: ObjectInfo; blob: string } | undefined> {
    let h: Awaited<ReturnType<BucketAdapter["head"]>>;
    try {
      h = await this.adapter.head(this.prefix + key);
    } catch (err) {
      throw this.adapter.mapError(err, `read the manifest of "${key}"`, key);
    }
    if (!h) return undefined;
    const sha256 = h.meta["lpm-sha256"];
    const blob = h.meta["lpm-blob"];
    const size = Number(h.meta["lpm-size"]);
    if (!sha256 || !blob || !Number.isFinite(size)) return undefined; // not ours
    let metadata: Record<string, string> = {};
    try {
      metadata = JSON.parse(decodeURIComponent(h.meta["lpm-meta"] ?? "%7B%7D"));
    } catch { /* foreign or damaged metadata: keep the object readable */ }
    const published = h.meta["lpm-published"];
    return {
      blob,
      info: {
        key,
        size,
        sha256,
        lastModified: published ? new Date(published) : h.lastModified,
        metadata,
      },
    };
  }

  async #bucketExists(): Promise<boolean> {
    try {
      return await this.adapter.bucketExists();
    } catch (err) {
      throw this.adapter.mapError(err, `check bucket "${this.adapter.bucket}"`);
    }
  }

  #missingBucket(what: string): StorageError {
    return this.#error(
      "NotFound",
      `Cannot ${what}: bucket "${this.adapter.bucket}" does not exist at "${this.adapter.endpoint}" (create it or fix the class's bucket)`,
    );
  }

  async #notFound(key: string): Promise<StorageError> {
    if (!(await this.#bucketExists())) return this.#missingBucket(`read "${key}"`);
    return this.#error("NotFound", `Object "${key}" does not exist at "${this.location}"`, key);
  }

  #checkKey(key: string): void {
    const problem = keyProblem(key);
    if (problem) throw this.#error("InvalidKey", `Invalid object key "${key}": ${problem}`, key);
  }

  #error(code: StorageErrorCode, message: string, key?: string): StorageError {
    return new StorageError(code, `${message} [provider ${this.provider}]`, {
      provider: this.provider,
      location: this.location,
      key,
    });
  }
}

/** Classifies an S3-style error (aws-sdk or minio-js) into a StorageError. */
export function classifyS3Error(
  err: unknown,
  ctx: {
    provider: string;
    endpoint: string;
    bucket: string;
    location: string;
    what: string;
    key?: string;
  },
): StorageError {
  if (err instanceof StorageError) return err;
  const e = err as {
    name?: string;
    code?: string;
    message?: string;
    $metadata?: { httpStatusCode?: number };
    cause?: { code?: string; message?: string };
  };
  const name = e.code && !e.code.startsWith("E") ? e.code : e.name ?? "";
  const sysCode = [e.code, e.cause?.code, (e as { errno?: string }).errno].find((c) =>
    typeof c === "string" && /^E[A-Z]+$/.test(c)
  );
  const status = e.$metadata?.httpStatusCode ?? (e as { statusCode?: number }).statusCode;
  const text = `${e.message ?? ""} ${e.cause?.message ?? ""}`;
  const cause = `${name || sysCode || "Error"}${e.message ? `: ${e.message}` : ""}`;
  const mk = (code: StorageErrorCode, msg: string) =>
    new StorageError(code, `Cannot ${ctx.what}: ${msg} [provider ${ctx.provider}]`, {
      provider: ctx.provider,
      location: ctx.location,
      key: ctx.key,
      cause: err,
    });
  if (
    /^(InvalidAccessKeyId|SignatureDoesNotMatch|InvalidToken|ExpiredToken|AuthorizationHeaderMalformed|CredentialsError)$/
      .test(name)
  ) {
    return mk(
      "Unauthorized",
      `"${ctx.endpoint}" rejected the credentials (${cause}); check the access key and secret key in the class's credentials Secret`,
    );
  }
  if (name === "AccessDenied" || status === 403) {
    return mk(
      "PermissionDenied",
      `"${ctx.endpoint}" denied access to bucket "${ctx.bucket}" (${cause}); grant the credentials read/write on it`,
    );
  }
  if (name === "NoSuchBucket") {
    return mk(
      "NotFound",
      `bucket "${ctx.bucket}" does not exist at "${ctx.endpoint}" (create it or fix the class's bucket)`,
    );
  }
  if (name === "NoSuchKey" || name === "NotFound" || status === 404) {
    return mk(
      "NotFound",
      `${
        ctx.key ? `object "${ctx.key}"` : "the object"
      } does not exist at "${ctx.location}" (${cause})`,
    );
  }
  if (
    /^(XMinioStorageFull|XMinioDiskFull)$/.test(name) ||
    /storage (is )?full|no space left/i.test(text)
  ) {
    return mk("NoSpace", `"${ctx.endpoint}" has no space left (${cause})`);
  }
  if (
    (sysCode &&
      /^(ECONNREFUSED|ECONNRESET|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|EPIPE|EAI_AGAIN|ECONNABORTED)$/
        .test(sysCode)) ||
    /^(TimeoutError|RequestTimeout)$/.test(name) ||
    /ECONNREFUSED|ECONNRESET|socket hang up|connection (refused|reset|closed)|connect error|network|fetch failed|other side closed|EPIPE/i
      .test(text) ||
    (status !== undefined && status >= 502 && status <= 504)
  ) {
    return mk(
      "Unreachable",
      `cannot reach "${ctx.endpoint}" (${cause}); check the endpoint URL, the network path and that the server runs`,
    );
  }
  if (
    /UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|SELF_SIGNED|CERT_UNTRUSTED|UnknownIssuer|unable to verify|self[- ]signed/i
      .test(text + (sysCode ?? "") + name)
  ) {
    return mk(
      "Unreachable",
      `the TLS certificate of "${ctx.endpoint}" is not trusted (${cause}); set the class's caBundle to the CA that issued it`,
    );
  }
  if (/certificate|self[- ]signed|CERT_|TLS/i.test(text + (sysCode ?? "") + name)) {
    return mk(
      "Unreachable",
      `TLS to "${ctx.endpoint}" failed (${cause}); set the class's caBundle or fix the server certificate`,
    );
  }
  return mk("Unknown", `${cause}${status ? ` (HTTP ${status})` : ""}`);
}
