import { assert, assertEquals, assertRejects } from "@std/assert";
import {
  type AesGcmEngine,
  chunkCipher,
  defaultAesGcmEngine,
  GCM_TAG,
  libcrypto,
} from "./aes_gcm.ts";

const ENGINES: AesGcmEngine[] = ["openssl", "webcrypto"];
const rand = (n: number) => {
  const b = new Uint8Array(n);
  for (let o = 0; o < n; o += 65536) crypto.getRandomValues(b.subarray(o, o + 65536));
  return b;
};

Deno.test("aes-gcm: OpenSSL's libcrypto loads here and is the default engine", () => {
  assert(libcrypto().lib, `libcrypto.so.3 did not load: ${libcrypto().why}`);
  assertEquals(defaultAesGcmEngine(), "openssl");
});

Deno.test("aes-gcm: both engines seal to the same bytes and open each other's", async () => {
  const key = rand(32);
  const [ssl, web] = await Promise.all(ENGINES.map((e) => chunkCipher(key, e)));
  assertEquals([ssl.engine, web.engine], ENGINES);
  for (const size of [0, 1, 15, 16, 17, 4096, (1 << 20) + 3]) {
    const plain = rand(size);
    const iv = rand(12);
    const aad = rand(size % 97);
    const a = await ssl.seal(plain, iv, aad);
    const b = await web.seal(plain, iv, aad);
    assertEquals(a.length, size + GCM_TAG);
    assert(a.every((x, i) => x === b[i]), `${size} bytes: the engines' ciphertexts differ`);
    assertEquals(await web.open(a, iv, aad), plain);
    assertEquals(await ssl.open(b, iv, aad), plain);
    // A view into a larger buffer is read at its offset.
    const framed = new Uint8Array(a.length + 10);
    framed.set(a, 5);
    assertEquals(await ssl.open(framed.subarray(5, 5 + a.length), iv, aad), plain);
  }
});

Deno.test("aes-gcm: a changed byte, tag, nonce or additional data fails in both engines", async () => {
  const key = rand(32);
  const plain = rand(5000);
  const iv = rand(12);
  const aad = rand(40);
  for (const engine of ENGINES) {
    const c = await chunkCipher(key, engine);
    const sealed = await c.seal(plain, iv, aad);
    const flip = (b: Uint8Array, i: number) => {
      const x = b.slice();
      x[i] ^= 1;
      return x;
    };
    for (
      const [what, s, n, d] of [
        ["ciphertext", flip(sealed, 100), iv, aad],
        ["tag", flip(sealed, sealed.length - 1), iv, aad],
        ["nonce", sealed, flip(iv, 0), aad],
        ["additional data", sealed, iv, flip(aad, 39)],
        ["truncation", sealed.subarray(0, sealed.length - 1), iv, aad],
        ["shorter than a tag", sealed.subarray(0, GCM_TAG - 1), iv, aad],
      ] as const
    ) {
      await assertRejects(() => c.open(s, n, d), Error, undefined, `${engine}: ${what}`);
    }
    await assertRejects(() => c.seal(plain, rand(16), aad), Error, "nonce has 16 bytes");
  }
  await assertRejects(() => chunkCipher(rand(16)), Error, "key has 16 bytes; it must have 32");
});
