/**
 * The encrypted form of a stored checkpoint archive (format "lpm-aead-v1"):
 * AES-256-GCM (OpenSSL's or WebCrypto's, `aes_gcm.ts`) over fixed-size
 * chunks, streamed, so memory stays at about two chunks whatever the
 * archive's size.
 * No home-made cipher: the construction is the STREAM scheme of Hoang,
 * Reyhanitabar, Rogaway and Vizár (also what age and Tink's streaming AEAD
 * do):
 *
 * - a per-archive key from HKDF-SHA256(class key, random 32-byte salt), so
 *   nonces never repeat under one key whatever the number of archives;
 * - chunk i's nonce is 4 zero bytes then i (64-bit big-endian);
 * - chunk i's additional data is the whole header, i and a final-chunk flag,
 *   so a reordered, dropped, duplicated or truncated chunk (the last chunk of
 *   a truncated stream was not sealed as final) fails authentication, as does
 *   a header whose key id or chunk size was changed.
 *
 * Layout: header = "LPMENC" | version 1 | flags 0 | chunk size (u32 BE) |
 * key id length (u8) | key id (ASCII) | salt (32 bytes); then the chunks,
 * each `chunkSize` plaintext bytes + a 16-byte tag, the last one shorter
 * (possibly empty) and sealed with the final flag.
 * @module
 */

/** Format name recorded in metadata and annotations. */
export const ENCRYPTION_FORMAT = "lpm-aead-v1";
/** Default plaintext bytes per chunk. */
export const DEFAULT_CHUNK_SIZE = 1 << 20;
/** Largest chunk a reader accepts (bounds its memory on hostile input). */
export const MAX_CHUNK_SIZE = 16 << 20;

import { Sha256Counter } from "../base/sha256.ts";
import { type AesGcmEngine, type ChunkCipher, chunkCipher } from "./aes_gcm.ts";
import { fileChunkStream } from "./_fs_io.ts";

const MAGIC = new TextEncoder().encode("LPMENC");
const VERSION = 1;
const TAG = 16;
const SALT = 32;
const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const INFO = new TextEncoder().encode("lpm archive v1");

/** One key of a class: its id and 32 bytes of material. */
export interface EncryptionKey {
  /** Key id (recorded in each header). */
  id: string;
  /** HKDF input key (32 bytes imported as non-extractable). */
  key: CryptoKey;
}

/** The keys of a class: `active` encrypts, every key in `byId` decrypts. */
export interface KeyRing {
  /** The key new archives are encrypted with. */
  active: EncryptionKey;
  /** Every key that may decrypt, by id (includes `active`). */
  byId: Map<string, EncryptionKey>;
}

/** A failure to decrypt: wrong key, unknown key id, bad header, tampered or truncated data. */
export class DecryptionError extends Error {
  /** Why, in a word: `UnknownKey`, `BadHeader`, `Authentication`, `Truncated`. */
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.name = "DecryptionError";
    this.reason = reason;
  }
}

/** Imports 32 bytes of key material as an {@linkcode EncryptionKey}. */
export async function importEncryptionKey(id: string, raw: Uint8Array): Promise<EncryptionKey> {
  if (!KEY_ID.test(id)) throw new Error(`Encryption key id "${id}" is not a valid key id`);
  if (raw.length !== 32) {
    throw new Error(`Encryption key "${id}" has ${raw.length} bytes; it must have 32`);
  }
  const key = await crypto.subtle.importKey(
    "raw",
    raw as Uint8Array<ArrayBuffer>,
    "HKDF",
    false,
    ["deriveBits"],
  );
  return { id, key };
}

/** The parsed header of an encrypted archive. */
export interface EncryptionHeader {
  /** Key id the archive was encrypted with. */
  keyId: string;
  /** Plaintext bytes per chunk. */
  chunkSize: number;
  /** HKDF salt. */
  salt: Uint8Array;
  /** The header's bytes (part of every chunk's additional data). */
  bytes: Uint8Array;
}

function encodeHeader(keyId: string, chunkSize: number, salt: Uint8Array): Uint8Array {
  const id = new TextEncoder().encode(keyId);
  const out = new Uint8Array(MAGIC.length + 2 + 4 + 1 + id.length + SALT);
  out.set(MAGIC, 0);
  let o = MAGIC.length;
  out[o++] = VERSION;
  out[o++] = 0;
  new DataView(out.buffer).setUint32(o, chunkSize);
  o += 4;
  out[o++] = id.length;
  out.set(id, o);
  out.set(salt, o + id.length);
  return out;
}

/** Header length for a key id (fixed part + id + salt). */
function headerLength(keyIdLength: number): number {
  return MAGIC.length + 2 + 4 + 1 + keyIdLength + SALT;
}

/**
 * Parses a header from the start of `buf`; undefined when `buf` is too
 * short to hold it yet. Throws {@linkcode DecryptionError} on a bad header.
 */
export function parseHeader(buf: Uint8Array): EncryptionHeader | undefined {
  const fixed = MAGIC.length + 2 + 4 + 1;
  if (buf.length < fixed) return undefined;
  if (!MAGIC.every((b, i) => buf[i] === b)) {
    throw new DecryptionError(
      "BadHeader",
      `Not an encrypted lpm archive (format "${ENCRYPTION_FORMAT}"): wrong magic bytes`,
    );
  }
  if (buf[MAGIC.length] !== VERSION || buf[MAGIC.length + 1] !== 0) {
    throw new DecryptionError(
      "BadHeader",
      `Encrypted archive has version ${buf[MAGIC.length]} flags ${
        buf[MAGIC.length + 1]
      }; this lpm reads version ${VERSION} flags 0`,
    );
  }
  const chunkSize = new DataView(buf.buffer, buf.byteOffset).getUint32(MAGIC.length + 2);
  if (chunkSize < 1 || chunkSize > MAX_CHUNK_SIZE) {
    throw new DecryptionError(
      "BadHeader",
      `Encrypted archive's chunk size ${chunkSize} is outside 1..${MAX_CHUNK_SIZE}`,
    );
  }
  const idLen = buf[fixed - 1];
  const total = headerLength(idLen);
  if (buf.length < total) return undefined;
  const keyId = new TextDecoder().decode(buf.subarray(fixed, fixed + idLen));
  if (!KEY_ID.test(keyId)) {
    throw new DecryptionError("BadHeader", `Encrypted archive names an invalid key id`);
  }
  return {
    keyId,
    chunkSize,
    salt: buf.slice(fixed + idLen, total),
    bytes: buf.slice(0, total),
  };
}

/** The archive's AES-256-GCM key, HKDF-SHA256(class key, salt), in a cipher (`aes_gcm.ts`). */
async function chunkKey(
  key: EncryptionKey,
  salt: Uint8Array,
  engine?: AesGcmEngine,
): Promise<ChunkCipher> {
  const bits = new Uint8Array(
    await crypto.subtle.deriveBits(
      { name: "HKDF", hash: "SHA-256", salt: salt as Uint8Array<ArrayBuffer>, info: INFO },
      key.key,
      256,
    ),
  );
  try {
    return await chunkCipher(bits, engine);
  } finally {
    bits.fill(0); // the cipher holds its own copy
  }
}

function nonce(index: number): Uint8Array<ArrayBuffer> {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setBigUint64(4, BigInt(index));
  return n;
}

function additionalData(header: Uint8Array, index: number, final: boolean) {
  const ad = new Uint8Array(header.length + 9);
  ad.set(header, 0);
  new DataView(ad.buffer).setBigUint64(header.length, BigInt(index));
  ad[header.length + 8] = final ? 1 : 0;
  return ad;
}

/**
 * Plaintext size of an encrypted blob of `size` bytes whose header is
 * `header` (each chunk adds a 16-byte tag; the last one holds at least it).
 */
export function plainSizeOf(size: number, header: EncryptionHeader): number {
  const body = size - header.bytes.length;
  const chunks = Math.max(1, Math.ceil(body / (header.chunkSize + TAG)));
  const plain = body - chunks * TAG;
  if (plain < 0) {
    throw new DecryptionError("Truncated", `Encrypted blob of ${size} bytes is too short`);
  }
  return plain;
}

/** Size of the encrypted form of `plainSize` bytes. */
export function encryptedSize(
  plainSize: number,
  opts: { keyId: string; chunkSize?: number },
): number {
  const cs = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const chunks = Math.max(1, Math.ceil(plainSize / cs)); // an empty input is one empty chunk
  return headerLength(new TextEncoder().encode(opts.keyId).length) + plainSize + chunks * TAG;
}

/** A FIFO of byte pieces from which exact lengths are taken (no copy of the whole stream). */
class ByteQueue {
  #pieces: Uint8Array[] = [];
  length = 0;
  push(b: Uint8Array): void {
    if (b.length === 0) return;
    this.#pieces.push(b);
    this.length += b.length;
  }
  /**
   * Removes and returns the first `n` bytes (n <= length): a view of the
   * first piece when it holds them all (the source's 2 MiB file reads), else
   * a copy gathered from the pieces (network reads are smaller than a chunk).
   */
  take(n: number): Uint8Array<ArrayBuffer> {
    const first = this.#pieces[0];
    if (first && first.length >= n && first.buffer instanceof ArrayBuffer) {
      if (first.length === n) this.#pieces.shift();
      else this.#pieces[0] = first.subarray(n);
      this.length -= n;
      return first.subarray(0, n) as Uint8Array<ArrayBuffer>;
    }
    const out = new Uint8Array(n);
    let o = 0;
    while (o < n) {
      const p = this.#pieces[0];
      const k = Math.min(p.length, n - o);
      out.set(p.subarray(0, k), o);
      o += k;
      if (k === p.length) this.#pieces.shift();
      else this.#pieces[0] = p.subarray(k);
    }
    this.length -= n;
    return out;
  }
  /** The first `n` bytes without removing them. */
  peek(n: number): Uint8Array {
    const out = new Uint8Array(Math.min(n, this.length));
    let o = 0;
    for (const p of this.#pieces) {
      if (o >= out.length) break;
      const k = Math.min(p.length, out.length - o);
      out.set(p.subarray(0, k), o);
      o += k;
    }
    return out;
  }
}

/** Options of {@linkcode encryptStream}. */
export interface EncryptOptions {
  /** Plaintext bytes per chunk (default 1 MiB). */
  chunkSize?: number;
  /** The AES-GCM implementation (default: OpenSSL when it loads; `aes_gcm.ts`). */
  engine?: AesGcmEngine;
}

/**
 * Chunks sealed or opened at the same time: WebCrypto runs each call on a
 * worker thread, so two in flight use two cores (measured on this 2-core
 * machine, 1 MiB chunks: AES-GCM decrypt 540-580 MiB/s alone, 740-870 with
 * two in flight); OpenSSL's calls are done when they return. Output order
 * never changes; memory grows by this many chunks.
 */
const IN_FLIGHT = 2;

/**
 * An in-order window of chunk operations: `add` starts one, and the oldest
 * is awaited and handed on once the window is full (or at `drain`). A
 * failing operation is reported when its turn comes, so nothing after it is
 * ever handed on.
 */
class Window {
  #ops: Promise<Uint8Array>[] = [];
  async add(op: Promise<Uint8Array>, out: (b: Uint8Array) => void): Promise<void> {
    op.catch(() => {}); // awaited in turn below
    this.#ops.push(op);
    while (this.#ops.length >= IN_FLIGHT) out(await this.#ops.shift()!);
  }
  async drain(out: (b: Uint8Array) => void): Promise<void> {
    while (this.#ops.length) out(await this.#ops.shift()!);
  }
}

/** A stream that encrypts with the ring's active key. */
export function encryptStream(
  ring: KeyRing,
  opts: EncryptOptions = {},
): TransformStream<Uint8Array, Uint8Array> {
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (chunkSize < 1 || chunkSize > MAX_CHUNK_SIZE) {
    throw new Error(`Chunk size ${chunkSize} is outside 1..${MAX_CHUNK_SIZE}`);
  }
  const salt = crypto.getRandomValues(new Uint8Array(SALT));
  const header = encodeHeader(ring.active.id, chunkSize, salt);
  const queue = new ByteQueue();
  const window = new Window();
  let index = 0;
  let key: ChunkCipher;
  const seal = (plain: Uint8Array, final: boolean) => {
    const i = index++; // taken before the await: chunks in flight keep their own index
    return key.seal(plain, nonce(i), additionalData(header, i, final));
  };
  return new TransformStream({
    async start(c) {
      key = await chunkKey(ring.active, salt, opts.engine);
      c.enqueue(header);
    },
    async transform(chunk, c) {
      queue.push(chunk);
      // Strictly more than a chunk: the last full chunk may be the final one.
      while (queue.length > chunkSize) {
        await window.add(seal(queue.take(chunkSize), false), (b) => c.enqueue(b));
      }
    },
    async flush(c) {
      await window.add(seal(queue.take(queue.length), true), (b) => c.enqueue(b));
      await window.drain((b) => c.enqueue(b));
    },
  });
}

/** Options of {@linkcode decryptStream}. */
export interface DecryptOptions {
  /** Called with the header once it is read (e.g. to log the key id). */
  onHeader?: (h: EncryptionHeader) => void;
  /** Names the data in error messages, e.g. `archive "ns/pod/id/c.tar"`. */
  what?: string;
  /** The AES-GCM implementation (default: OpenSSL when it loads; `aes_gcm.ts`). */
  engine?: AesGcmEngine;
}

/**
 * A stream that decrypts with the ring's key the header names. Errors with a
 * {@linkcode DecryptionError} for an unknown key id, a bad header, a chunk
 * that fails authentication (wrong key material, tampering, reordering) or a
 * stream that ends before its final chunk.
 */
export function decryptStream(
  ring: KeyRing,
  opts: DecryptOptions = {},
): TransformStream<Uint8Array, Uint8Array> {
  const what = opts.what ?? "encrypted archive";
  const queue = new ByteQueue();
  let header: EncryptionHeader | undefined;
  let key: ChunkCipher;
  const window = new Window();
  let index = 0;
  const open = async (sealed: Uint8Array<ArrayBuffer>, final: boolean) => {
    const i = index++; // taken before the await: chunks in flight keep their own index
    try {
      return await key.open(sealed, nonce(i), additionalData(header!.bytes, i, final));
    } catch {
      throw new DecryptionError(
        final ? "Truncated" : "Authentication",
        `Cannot decrypt ${what}: chunk ${i} fails authentication with key "${
          header!.keyId
        }" (wrong key material, or the data was altered${final ? " or truncated" : ""})`,
      );
    }
  };
  const readHeader = async () => {
    header = parseHeader(queue.peek(headerLength(255)));
    if (!header) return;
    const k = ring.byId.get(header.keyId);
    if (!k) {
      throw new DecryptionError(
        "UnknownKey",
        `Cannot decrypt ${what}: it was encrypted with key "${header.keyId}", which ` +
          `spec.encryption.keys does not list (listed: ${
            [...ring.byId.keys()].map((i) => `"${i}"`).join(", ")
          })`,
      );
    }
    queue.take(header.bytes.length);
    key = await chunkKey(k, header.salt, opts.engine);
    opts.onHeader?.(header);
  };
  return new TransformStream({
    async transform(chunk, c) {
      queue.push(chunk);
      if (!header) await readHeader();
      if (!header) return;
      const sealed = header.chunkSize + TAG;
      // Only chunks that authenticated are handed on, in order (see Window).
      while (queue.length > sealed) {
        await window.add(open(queue.take(sealed), false), (b) => c.enqueue(b));
      }
    },
    async flush(c) {
      if (!header) await readHeader();
      if (!header || queue.length < TAG) {
        throw new DecryptionError(
          "Truncated",
          `Cannot decrypt ${what}: it ends before its ${header ? "final chunk" : "header"}`,
        );
      }
      await window.add(open(queue.take(queue.length), true), (b) => c.enqueue(b));
      await window.drain((b) => c.enqueue(b));
    },
  });
}

/** The file {@linkcode encryptedFileStream} streams, encrypted. */
export interface EncryptedFile {
  /** The encrypted bytes (header and chunks). */
  stream: ReadableStream<Uint8Array>;
  /** Their size, known before the first byte (see {@linkcode encryptedSize}). */
  size: number;
  /** The plaintext's size (the file's size when opened). */
  plainSize: number;
  /**
   * sha256 (hex) of the plaintext (an image's `diff_id`), hashed in the same
   * pass; resolves when the stream has ended, rejects if it failed.
   */
  plainSha256: Promise<string>;
}

/**
 * File `src` encrypted as a stream, read in big chunks with one read ahead:
 * what the source agent stores and pushes at the same time, with no
 * encrypted copy on disk and no separate pass over the archive.
 */
export async function encryptedFileStream(
  src: string,
  ring: KeyRing,
  opts: EncryptOptions = {},
): Promise<EncryptedFile> {
  const plainSize = (await Deno.stat(src)).size;
  const hash = new Sha256Counter();
  const plainSha256 = Promise.withResolvers<string>();
  plainSha256.promise.catch(() => {}); // the stream's consumer sees the error first
  const hashing = new TransformStream<Uint8Array, Uint8Array>({
    transform(c, ctl) {
      hash.update(c);
      ctl.enqueue(c);
    },
    flush() {
      plainSha256.resolve(hash.hex());
    },
    cancel(reason) {
      plainSha256.reject(reason);
    },
  });
  const stream = (await fileChunkStream(src)).pipeThrough(hashing).pipeThrough(
    encryptStream(ring, opts),
  );
  return {
    stream,
    size: encryptedSize(plainSize, { keyId: ring.active.id, chunkSize: opts.chunkSize }),
    plainSize,
    plainSha256: plainSha256.promise,
  };
}

/**
 * Encrypts file `src` into `dst` (written to a temp name and renamed, so
 * `dst` appears only complete); resolves with the encrypted size and the
 * plaintext's sha256 (hex), hashed in the same pass (an image's `diff_id`).
 */
export async function encryptFile(
  src: string,
  dst: string,
  ring: KeyRing,
  opts: EncryptOptions & { signal?: AbortSignal } = {},
): Promise<{ size: number; plainSha256: string }> {
  const tmp = `${dst}.partial`;
  try {
    const enc = await encryptedFileStream(src, ring, opts);
    const output = await Deno.open(tmp, { write: true, create: true, truncate: true });
    await enc.stream.pipeTo(output.writable, { signal: opts.signal });
    await Deno.rename(tmp, dst);
    return { size: (await Deno.stat(dst)).size, plainSha256: await enc.plainSha256 };
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}

/**
 * Decrypts a stream into file `dst` (temp name, renamed only when every
 * chunk authenticated: a failure leaves nothing at `dst`); resolves with the
 * plaintext size.
 */
export async function decryptToFile(
  body: ReadableStream<Uint8Array>,
  dst: string,
  ring: KeyRing,
  opts: DecryptOptions & { signal?: AbortSignal } = {},
): Promise<number> {
  const tmp = `${dst}.partial`;
  try {
    const output = await Deno.open(tmp, { write: true, create: true, truncate: true });
    await body.pipeThrough(decryptStream(ring, opts)).pipeTo(output.writable, {
      signal: opts.signal,
    });
    await Deno.rename(tmp, dst);
    return (await Deno.stat(dst)).size;
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}
