import { assert, assertEquals, assertRejects, assertStringIncludes } from "@std/assert";
import {
  DecryptionError,
  decryptStream,
  decryptToFile,
  encryptedFileStream,
  encryptedSize,
  encryptFile,
  encryptStream,
  importEncryptionKey,
  type KeyRing,
  parseHeader,
  plainSizeOf,
} from "./encryption.ts";
import { sha256Hex } from "../base/sha256.ts";
import { decodeKeyMaterial, loadKeyRing } from "./encryption_keys.ts";
import { validateEncryption } from "./validate.ts";

async function ring(...ids: string[]): Promise<KeyRing> {
  const keys = await Promise.all(
    ids.map((id) => importEncryptionKey(id, crypto.getRandomValues(new Uint8Array(32)))),
  );
  return { active: keys[0], byId: new Map(keys.map((k) => [k.id, k])) };
}

/** Feeds `data` in pieces of `piece` bytes (chunk boundaries never line up with the input's). */
function pieces(data: Uint8Array, piece = 777): ReadableStream<Uint8Array> {
  let o = 0;
  return new ReadableStream({
    pull(c) {
      if (o >= data.length) return c.close();
      c.enqueue(data.slice(o, o + piece));
      o += piece;
    },
  });
}

async function collect(s: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(s).arrayBuffer());
}

async function seal(r: KeyRing, data: Uint8Array, chunkSize = 1000): Promise<Uint8Array> {
  return await collect(pieces(data).pipeThrough(encryptStream(r, { chunkSize })));
}

async function open(r: KeyRing, sealed: Uint8Array): Promise<Uint8Array> {
  return await collect(pieces(sealed, 333).pipeThrough(decryptStream(r, { what: "test data" })));
}

Deno.test("encryption: round trip at sizes around chunk boundaries, size as predicted", async () => {
  const r = await ring("k1");
  for (const n of [0, 1, 999, 1000, 1001, 2000, 5432]) {
    const data = crypto.getRandomValues(new Uint8Array(n));
    const sealed = await seal(r, data);
    assertEquals(sealed.length, encryptedSize(n, { keyId: "k1", chunkSize: 1000 }), `size ${n}`);
    assertEquals(await open(r, sealed), data, `size ${n}`);
    assertEquals(plainSizeOf(sealed.length, parseHeader(sealed)!), n, `plainSizeOf ${n}`);
    assertEquals(parseHeader(sealed)?.keyId, "k1");
  }
});

Deno.test("encryption: archives sealed with OpenSSL open with WebCrypto and the reverse", async () => {
  const r = await ring("k1");
  const data = crypto.getRandomValues(new Uint8Array(5432));
  for (const [by, with_] of [["openssl", "webcrypto"], ["webcrypto", "openssl"]] as const) {
    const sealed = await collect(
      pieces(data).pipeThrough(encryptStream(r, { chunkSize: 1000, engine: by })),
    );
    const opened = await collect(
      pieces(sealed, 333).pipeThrough(decryptStream(r, { engine: with_ })),
    );
    assertEquals(opened, data, `sealed by ${by}, opened by ${with_}`);
    const bad = sealed.slice();
    bad[bad.length - 20] ^= 1;
    await assertRejects(
      () => collect(pieces(bad, 333).pipeThrough(decryptStream(r, { engine: with_ }))),
      DecryptionError,
      "chunk 5 fails authentication",
    );
  }
});

Deno.test("encryption: the ciphertext does not contain the plaintext and differs each time", async () => {
  const r = await ring("k1");
  const marker = new TextEncoder().encode("MARKER-".repeat(400));
  const a = await seal(r, marker);
  const b = await seal(r, marker);
  const text = new TextDecoder("latin1").decode(a);
  assert(!text.includes("MARKER-"));
  assert(a.some((x, i) => x !== b[i]), "two encryptions of the same data are equal");
});

Deno.test("encryption: a flipped bit, a dropped, swapped or truncated chunk fail", async () => {
  const r = await ring("k1");
  const data = crypto.getRandomValues(new Uint8Array(3500)); // 4 chunks: 3 full + 500
  const sealed = await seal(r, data);
  const h = parseHeader(sealed)!.bytes.length;
  const c = 1016; // sealed chunk
  const flipped = sealed.slice();
  flipped[h + 1500] ^= 1;
  const e1 = await assertRejects(() => open(r, flipped), DecryptionError);
  assertStringIncludes(e1.message, "chunk 1 fails authentication");
  // Truncated at a chunk boundary: the last chunk left was not sealed as final.
  const truncated = sealed.slice(0, h + 3 * c);
  const e2 = await assertRejects(() => open(r, truncated), DecryptionError);
  assertEquals(e2.reason, "Truncated");
  // Truncated inside a chunk, and before the header ends.
  await assertRejects(() => open(r, sealed.slice(0, sealed.length - 1)), DecryptionError);
  await assertRejects(() => open(r, sealed.slice(0, 20)), DecryptionError, "header");
  // Chunks 0 and 1 swapped.
  const swapped = sealed.slice();
  swapped.set(sealed.subarray(h + c, h + 2 * c), h);
  swapped.set(sealed.subarray(h, h + c), h + c);
  await assertRejects(() => open(r, swapped), DecryptionError, "chunk 0");
  // A dropped middle chunk.
  const dropped = new Uint8Array([...sealed.subarray(0, h + c), ...sealed.subarray(h + 2 * c)]);
  await assertRejects(() => open(r, dropped), DecryptionError);
  // The header's chunk size changed (bound in every chunk's additional data).
  const header = sealed.slice();
  header[9] ^= 0x01;
  await assertRejects(() => open(r, header), DecryptionError);
});

Deno.test("encryption: chunks opened in parallel: nothing after a bad chunk is handed on", async () => {
  const r = await ring("k1");
  const data = crypto.getRandomValues(new Uint8Array(10_500)); // 11 chunks of 1000
  const sealed = await seal(r, data);
  const h = parseHeader(sealed)!.bytes.length;
  for (const bad of [0, 1, 4, 9, 10]) {
    const tampered = sealed.slice();
    tampered[h + bad * 1016 + 7] ^= 0x80;
    // Read what the decryptor hands on before it fails: exactly the chunks before the bad one.
    const reader = pieces(tampered, 4096).pipeThrough(decryptStream(r)).getReader();
    const got: number[] = [];
    const err = await assertRejects(async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        got.push(...value);
      }
    }, DecryptionError);
    assertStringIncludes(err.message, `chunk ${bad} fails`);
    assertEquals(new Uint8Array(got), data.subarray(0, bad * 1000), `bad chunk ${bad}`);
  }
});

Deno.test("encryption: a wrong key or an unlisted key id fails naming the key", async () => {
  const a = await ring("k1");
  const sealed = await seal(a, new Uint8Array(10));
  const sameIdOtherKey = await ring("k1");
  const e = await assertRejects(() => open(sameIdOtherKey, sealed), DecryptionError);
  assertStringIncludes(e.message, 'with key "k1"');
  const other = await ring("k2");
  const u = await assertRejects(() => open(other, sealed), DecryptionError);
  assertEquals(u.reason, "UnknownKey");
  assertStringIncludes(u.message, "spec.encryption.keys");
  await assertRejects(
    () => open(a, new TextEncoder().encode("plain tar data, not encrypted at all")),
    DecryptionError,
    "magic",
  );
});

Deno.test("encryption: rotation: the first key encrypts, every listed key decrypts", async () => {
  const old = await ring("old");
  const oldSealed = await seal(old, new Uint8Array([1, 2, 3]));
  const rotated: KeyRing = {
    active: (await ring("new")).active,
    byId: new Map([...old.byId]),
  };
  rotated.byId.set(rotated.active.id, rotated.active);
  const newSealed = await seal(rotated, new Uint8Array([4, 5]));
  assertEquals(parseHeader(newSealed)?.keyId, "new");
  assertEquals(await open(rotated, oldSealed), new Uint8Array([1, 2, 3]));
  assertEquals(await open(rotated, newSealed), new Uint8Array([4, 5]));
});

Deno.test("encryption: files: decryptToFile leaves nothing on failure", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lpm-enc-" });
  try {
    const r = await ring("k1");
    const data = new Uint8Array(300_000).map((_, i) => (i * 7919) % 251);
    await Deno.writeFile(`${dir}/plain`, data);
    const n = await encryptFile(`${dir}/plain`, `${dir}/sealed`, r, { chunkSize: 65536 });
    assertEquals(n.size, encryptedSize(data.length, { keyId: "k1", chunkSize: 65536 }));
    assertEquals(n.plainSha256, sha256Hex(data));
    const sealedBytes = await Deno.readFile(`${dir}/sealed`);
    assertEquals(plainSizeOf(n.size, parseHeader(sealedBytes)!), data.length);
    const sealedFile = await Deno.open(`${dir}/sealed`);
    assertEquals(await decryptToFile(sealedFile.readable, `${dir}/back`, r), data.length);
    assertEquals(await Deno.readFile(`${dir}/back`), data);
    const bad = await Deno.readFile(`${dir}/sealed`);
    bad[bad.length - 5] ^= 0xff;
    await assertRejects(() => decryptToFile(new Blob([bad]).stream(), `${dir}/out`, r));
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["back", "plain", "sealed"]);
    // The stream the source agent stores and pushes: size known up front, plaintext hashed.
    const es = await encryptedFileStream(`${dir}/plain`, r);
    const streamed = await collect(es.stream);
    assertEquals([streamed.length, es.plainSize], [es.size, data.length]);
    assertEquals(await es.plainSha256, sha256Hex(data));
    assertEquals(await open(r, streamed), data);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("encryption keys: loadKeyRing and validateEncryption name the field", async () => {
  const b64 = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
  const hex = "ab".repeat(32);
  assertEquals(decodeKeyMaterial(hex)?.length, 32);
  assertEquals(decodeKeyMaterial(b64)?.length, 32);
  assertEquals(decodeKeyMaterial("short"), undefined);
  const enc = {
    secretRef: { name: "keys", namespace: "lpm-system" },
    keys: [{ id: "new", secretKey: "key-new" }, { id: "old" }],
  };
  const r = await loadKeyRing(enc, { "key-new": b64, old: hex });
  assertEquals(r.active.id, "new");
  assertEquals([...r.byId.keys()], ["new", "old"]);
  const spec = { provider: "local" as const, local: { path: "/x" }, encryption: enc };
  const missing = await validateEncryption(spec, { "key-new": b64 });
  assertEquals(missing.available, false);
  assertStringIncludes(missing.message, 'spec.encryption.keys[1] (id "old")');
  assertStringIncludes(missing.message, 'no entry "old"');
  const short = await validateEncryption(spec, { "key-new": b64, old: "abcd" });
  assertStringIncludes(short.message, "spec.encryption.keys[1]");
  assertStringIncludes(short.message, "32 bytes");
  const noSecret = await validateEncryption(spec, undefined);
  assertStringIncludes(noSecret.message, 'spec.encryption.secretRef: Secret "lpm-system/keys"');
  const ok = await validateEncryption(spec, { "key-new": b64, old: hex });
  assert(ok.available, ok.message);
  assertEquals(ok.status, 'On (key "new")');
  assertEquals((await validateEncryption({ provider: "local" }, undefined)).status, "Off");
});

Deno.test("encryption: memory stays flat: 512 MiB through encrypt and decrypt", async () => {
  // In a process of its own: the test runner's RSS is shared with every other test file
  // (their garbage and leftovers made this flaky in one clean-clone CI run).
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./_encryption_memory_probe.ts", import.meta.url).pathname]
      .concat(["--mib", "512"]),
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert(out.success, "the probe failed");
  const r = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    bytes: number;
    rss0: number;
    peak: number;
  };
  assertEquals(r.bytes, 512 << 20);
  // Flat: chunks in flight and garbage not yet collected, not the data (>= 512 MiB).
  assert(r.peak - r.rss0 < 192 << 20, `RSS grew by ${(r.peak - r.rss0) >> 20} MiB`);
});
