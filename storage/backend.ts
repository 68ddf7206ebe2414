/**
 * The storage interface every provider implements (after Velero's
 * ObjectStore): streams in and out, a sha256 computed while writing and
 * checked while reading, and atomic publish (an object is either complete
 * and listed, or absent).
 * @module
 */

/** What the store knows about one complete object. */
export interface ObjectInfo {
  /** Object key, e.g. `<namespace>/<pod>/<checkpoint-id>/<file>`. */
  key: string;
  /** Size in bytes. */
  size: number;
  /** Lowercase hex sha256 of the content. */
  sha256: string;
  /** When the object was published. */
  lastModified: Date;
  /** User metadata given to `put`. */
  metadata: Record<string, string>;
}

/** Options for {@linkcode CheckpointStore.put}. */
export interface PutOptions {
  /** Expected lowercase hex sha256: on mismatch the put fails and publishes nothing. */
  sha256?: string;
  /** Expected size in bytes (helps multipart sizing; checked like `sha256`). */
  size?: number;
  /** User metadata stored with the object (ASCII-safe keys, values any string). */
  metadata?: Record<string, string>;
  /** Cancels the upload; nothing is published. */
  signal?: AbortSignal;
  /** Called with the total number of bytes consumed so far. */
  onProgress?: (bytes: number) => void;
}

/** Options for {@linkcode CheckpointStore.get}. */
export interface GetOptions {
  /** Cancels the download. */
  signal?: AbortSignal;
}

/** Options for {@linkcode CheckpointStore.list}. */
export interface ListOptions {
  /** Cancels the listing. */
  signal?: AbortSignal;
}

/** Options for {@linkcode CheckpointStore.createSignedUrl}. */
export interface SignedUrlOptions {
  /** How long the URL stays valid, in milliseconds. */
  ttlMs: number;
}

/** One storage backend bound to one location (a directory or a bucket + prefix). */
export interface CheckpointStore {
  /** Provider name: "local", "pvc", "s3", "minio". */
  readonly provider: string;
  /** Human-readable location: a path, or endpoint/bucket/prefix. */
  readonly location: string;
  /**
   * Streams `body` to `key`, computing its sha256 on the way, and publishes
   * the object atomically when the stream ends. Replaces an existing object.
   */
  put(key: string, body: ReadableStream<Uint8Array>, opts?: PutOptions): Promise<ObjectInfo>;
  /**
   * Streams the object. The sha256 is verified as it streams: on mismatch the
   * stream errors at its end with a `DigestMismatch` {@linkcode StorageError}
   * naming the key and both digests. A missing key rejects with `NotFound`.
   */
  get(key: string, opts?: GetOptions): Promise<ReadableStream<Uint8Array>>;
  /** The object's info, or undefined when it does not exist. */
  stat(key: string): Promise<ObjectInfo | undefined>;
  /** Every complete object whose key starts with `prefix` (never temp data). */
  list(prefix: string, opts?: ListOptions): AsyncIterable<ObjectInfo>;
  /** Removes the object; removing a missing object is not an error. */
  delete(key: string): Promise<void>;
  /**
   * Optional fast path of `put` for a file (a checkpoint archive on the
   * node): same guarantees (sha256, expectations, atomic publish). Use
   * {@linkcode storeFile} to call it with a fallback to `put`.
   */
  putFile?(key: string, path: string, opts?: PutOptions): Promise<ObjectInfo>;
  /**
   * Optional fast path of `get` into a file: `path` appears only when the
   * content verified; a mismatch rejects with `DigestMismatch` and leaves
   * nothing there. Use {@linkcode fetchToFile} to call it with a fallback.
   */
  getToFile?(key: string, path: string, opts?: GetOptions): Promise<ObjectInfo>;
  /** A URL that reads the object's bytes without credentials, when the provider can make one. */
  createSignedUrl?(key: string, opts: SignedUrlOptions): Promise<string>;
  /**
   * Removes debris older than `graceMs`: temp files, unreferenced data and
   * incomplete multipart uploads left by crashed or aborted writers.
   * Returns how many items it removed.
   */
  cleanDebris(opts: { graceMs: number; signal?: AbortSignal }): Promise<number>;
  /** Releases clients and sockets. */
  close?(): void;
}
