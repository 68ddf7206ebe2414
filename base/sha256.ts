/**
 * The one sha256 helper of the repository: lowercase hex digests of bytes or
 * text at once, or incrementally with a byte count. node:crypto, because it
 * hashes synchronously and streams (WebCrypto's digest takes the whole input).
 * @module
 */
import { createHash, type Hash } from "node:crypto";

/** Lowercase hex sha256 of `data` (a string is hashed as UTF-8). */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** True when `s` looks like a lowercase hex sha256. */
export function isSha256Hex(s: string): boolean {
  return /^[0-9a-f]{64}$/.test(s);
}

/** Incremental sha256 that also counts bytes. */
export class Sha256Counter {
  #hash: Hash = createHash("sha256");
  /** Bytes hashed so far. */
  size = 0;
  /** Adds a chunk; returns this, for chaining. */
  update(chunk: Uint8Array): this {
    this.#hash.update(chunk);
    this.size += chunk.byteLength;
    return this;
  }
  /** Lowercase hex digest (call once). */
  hex(): string {
    return this.#hash.digest("hex");
  }
}
