/**
 * AES-256-GCM over one chunk (12-byte nonce, additional data, the 16-byte
 * tag after the ciphertext: WebCrypto's output layout), from one of two
 * engines that produce the same bytes:
 *
 * - `openssl`: the node's OpenSSL 3 (`libcrypto.so.3`, the EVP interface)
 *   through Deno's FFI: 2.4-4.3 GiB/s on this 2-core VM against 0.45-0.52
 *   GiB/s for Deno's WebCrypto AES-GCM (1 MiB chunks, side by side,
 *   2026-11-30). In 256 MiB migrations through an encrypting class
 *   (`deno task bench migration --sizes 256 --encrypted`) encryption added
 *   +16.5 % to the downtime in the last run before (5 rounds), and +7.5 %,
 *   +17.6 % and +10.2 % in three runs after, +7.4 % over their 17 rounds
 *   (every run: docs/security.md).
 * - `webcrypto`: the runtime's `crypto.subtle`, where libcrypto cannot be
 *   loaded (no library, or no `--allow-ffi`).
 *
 * Either way a maintained implementation does the cipher; this module only
 * moves bytes in and out. A chunk that fails authentication yields nothing:
 * the OpenSSL engine zeroes what it decrypted before the tag check failed.
 * @module
 */

/** Which implementation seals and opens. */
export type AesGcmEngine = "openssl" | "webcrypto";

/** AES-256-GCM with one key (see the module doc). */
export interface ChunkCipher {
  /** The implementation in use. */
  readonly engine: AesGcmEngine;
  /** Ciphertext followed by the 16-byte tag. */
  seal(plain: Uint8Array, nonce: Uint8Array, aad: Uint8Array): Promise<Uint8Array>;
  /** The plaintext; rejects when the tag does not authenticate. */
  open(sealed: Uint8Array, nonce: Uint8Array, aad: Uint8Array): Promise<Uint8Array>;
}

/** Tag bytes after each ciphertext. */
export const GCM_TAG = 16;
const NONCE = 12;
const KEY = 32;
/** EVP_CIPHER_CTX_ctrl's EVP_CTRL_GCM_SET_TAG and EVP_CTRL_GCM_GET_TAG. */
const SET_TAG = 0x11;
const GET_TAG = 0x10;

const SYMBOLS = {
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  EVP_CIPHER_CTX_free: { parameters: ["pointer"], result: "void" },
  EVP_aes_256_gcm: { parameters: [], result: "pointer" },
  EVP_EncryptInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  EVP_EncryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_EncryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_DecryptInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  EVP_DecryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_DecryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_CIPHER_CTX_ctrl: { parameters: ["pointer", "i32", "i32", "buffer"], result: "i32" },
} as const;

type Libcrypto = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let loaded: { lib?: Libcrypto; why?: string } | undefined;

/**
 * OpenSSL's libcrypto, loaded once; undefined (with the reason) when it
 * cannot be: no `libcrypto.so.3`, or FFI not permitted.
 */
export function libcrypto(): { lib?: Libcrypto; why?: string } {
  if (!loaded) {
    try {
      loaded = { lib: Deno.dlopen("libcrypto.so.3", SYMBOLS).symbols };
    } catch (err) {
      loaded = { why: (err as Error).message };
    }
  }
  return loaded;
}

/** The engine `chunkCipher` picks when none is asked for. */
export function defaultAesGcmEngine(): AesGcmEngine {
  return libcrypto().lib ? "openssl" : "webcrypto";
}

/** A view typed as FFI's buffer parameters want it (no copy). */
const buf = (b: Uint8Array) => b as Uint8Array<ArrayBuffer>;

/** `f()`'s value, or its throw as a rejection. */
function settle<T>(f: () => T): Promise<T> {
  try {
    return Promise.resolve(f());
  } catch (err) {
    return Promise.reject(err);
  }
}

/** Longest input one call takes: OpenSSL's lengths are C ints (lpm's chunks are <= 16 MiB). */
const MAX_INPUT = 2 ** 31 - 1 - GCM_TAG;

function checkInput(len: number): void {
  if (len > MAX_INPUT) throw new Error(`AES-256-GCM input of ${len} bytes is over ${MAX_INPUT}`);
}

function check(what: string, len: number, want: number): void {
  if (len !== want) throw new Error(`AES-256-GCM ${what} has ${len} bytes; it must have ${want}`);
}

/**
 * A cipher for raw 32-byte `key` from `engine` (default: OpenSSL when it
 * loads, else WebCrypto). The key bytes are copied.
 */
export async function chunkCipher(key: Uint8Array, engine?: AesGcmEngine): Promise<ChunkCipher> {
  check("key", key.length, KEY);
  const use = engine ?? defaultAesGcmEngine();
  if (use === "openssl") {
    const { lib, why } = libcrypto();
    if (!lib) throw new Error(`OpenSSL's libcrypto.so.3 cannot be used: ${why}`);
    return opensslCipher(lib, key.slice());
  }
  const k = await crypto.subtle.importKey(
    "raw",
    key.slice() as Uint8Array<ArrayBuffer>,
    "AES-GCM",
    false,
    ["encrypt", "decrypt"],
  );
  const params = (iv: Uint8Array, aad: Uint8Array) => ({
    name: "AES-GCM",
    iv: iv as Uint8Array<ArrayBuffer>,
    additionalData: aad as Uint8Array<ArrayBuffer>,
  });
  return {
    engine: "webcrypto",
    async seal(plain, iv, aad) {
      check("nonce", iv.length, NONCE);
      return new Uint8Array(
        await crypto.subtle.encrypt(params(iv, aad), k, plain as Uint8Array<ArrayBuffer>),
      );
    },
    async open(sealed, iv, aad) {
      check("nonce", iv.length, NONCE);
      return new Uint8Array(
        await crypto.subtle.decrypt(params(iv, aad), k, sealed as Uint8Array<ArrayBuffer>),
      );
    },
  };
}

function opensslCipher(lib: Libcrypto, key: Uint8Array<ArrayBuffer>): ChunkCipher {
  const cipher = lib.EVP_aes_256_gcm();
  // One context per call: nothing to free later, and calls never share state.
  const withContext = <T>(f: (ctx: Deno.PointerValue, outl: Uint8Array) => T): T => {
    const ctx = lib.EVP_CIPHER_CTX_new();
    if (!ctx) throw new Error("OpenSSL could not allocate a cipher context");
    try {
      return f(ctx, new Uint8Array(4));
    } finally {
      lib.EVP_CIPHER_CTX_free(ctx);
    }
  };
  const ok = (rc: number, what: string) => {
    if (rc !== 1) throw new Error(`OpenSSL AES-256-GCM ${what} failed`);
  };
  return {
    engine: "openssl",
    seal: (plain, iv, aad) =>
      settle(() => {
        check("nonce", iv.length, NONCE);
        checkInput(plain.length);
        checkInput(aad.length);
        return withContext((ctx, outl) => {
          const n = plain.length;
          const out = new Uint8Array(n + GCM_TAG);
          ok(lib.EVP_EncryptInit_ex(ctx, cipher, null, key, buf(iv)), "init");
          ok(lib.EVP_EncryptUpdate(ctx, null, outl, buf(aad), aad.length), "aad");
          ok(lib.EVP_EncryptUpdate(ctx, out, outl, buf(plain), n), "update");
          ok(lib.EVP_EncryptFinal_ex(ctx, out.subarray(n), outl), "final");
          ok(lib.EVP_CIPHER_CTX_ctrl(ctx, GET_TAG, GCM_TAG, out.subarray(n)), "tag");
          return out;
        });
      }),
    open: (sealed, iv, aad) =>
      settle(() => {
        check("nonce", iv.length, NONCE);
        if (sealed.length < GCM_TAG) throw new Error("AES-256-GCM input is shorter than its tag");
        checkInput(sealed.length);
        checkInput(aad.length);
        const n = sealed.length - GCM_TAG;
        return withContext((ctx, outl) => {
          const out = new Uint8Array(n);
          ok(lib.EVP_DecryptInit_ex(ctx, cipher, null, key, buf(iv)), "init");
          ok(lib.EVP_DecryptUpdate(ctx, null, outl, buf(aad), aad.length), "aad");
          ok(lib.EVP_DecryptUpdate(ctx, out, outl, buf(sealed.subarray(0, n)), n), "update");
          ok(lib.EVP_CIPHER_CTX_ctrl(ctx, SET_TAG, GCM_TAG, buf(sealed.subarray(n))), "tag");
          if (lib.EVP_DecryptFinal_ex(ctx, out.subarray(n), outl) !== 1) {
            out.fill(0);
            throw new Error("The AES-256-GCM tag does not authenticate the data");
          }
          return out;
        });
      }),
  };
}
