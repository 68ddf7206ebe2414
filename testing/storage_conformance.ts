/**
 * The one conformance suite every provider passes. Call
 * {@linkcode registerConformance} from a provider's test file with a
 * fixture factory; it registers one Deno test per behaviour.
 * @module
 */
import {
  assert,
  assertEquals,
  assertGreater,
  assertMatch,
  assertRejects,
  assertStringIncludes,
} from "@std/assert";
import { Sha256Counter } from "../base/sha256.ts";
import type { CheckpointStore, ObjectInfo } from "../storage/backend.ts";
import { isStorageError, StorageError } from "../storage/errors.ts";
import type { CheckpointStorageClassSpec } from "../api/mod.ts";
import { fetchToFile, storeFile } from "../storage/file_io.ts";
import { envTest, type Needs } from "./env.ts";

/** One isolated store under test (its own directory or bucket prefix). */
export interface ConformanceFixture {
  /** The store under test. */
  store: CheckpointStore;
  /** Overwrites the stored bytes of `key` in place, keeping the stored digest. */
  corrupt(key: string): Promise<void>;
  /** How many debris items (temp files, orphan data, incomplete uploads) exist, seen raw. */
  debris(): Promise<number>;
  /** A class spec + Secret that opens the same store in another process. */
  classSpec: CheckpointStorageClassSpec;
  /** Decoded Secret data for `classSpec`. */
  secret?: Record<string, string>;
  /** Removes everything the fixture created. */
  cleanup(): Promise<void>;
}

/** Options for {@linkcode registerConformance}. */
export interface ConformanceOptions {
  /** Test name prefix, e.g. "local". */
  name: string;
  /** Opens a fresh, empty fixture. */
  open(): Promise<ConformanceFixture>;
  /** Size of the big streamed object (default 64 MiB). */
  bigBytes?: number;
  /** Skip every test (with the reason in the name). */
  ignore?: boolean;
  /** Real parts the provider needs (its tests then register with `envTest`). */
  needs?: Needs;
}

const MIB = 1 << 20;
const CHILD = new URL("./put_child.ts", import.meta.url).pathname;

/** Random bytes of any length (getRandomValues fills at most 64 KiB at a time). */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let off = 0; off < n; off += 65536) {
    crypto.getRandomValues(out.subarray(off, Math.min(n, off + 65536)));
  }
  return out;
}

/** A stream of `data` in irregular chunks (so stores cannot assume chunk sizes). */
export function streamOf(data: Uint8Array): ReadableStream<Uint8Array> {
  let off = 0;
  const sizes = [1, 4093, 65536, 1 << 20, 333];
  let i = 0;
  return new ReadableStream({
    pull(c) {
      if (off >= data.length) return c.close();
      const n = sizes[i++ % sizes.length];
      c.enqueue(data.slice(off, off + n));
      off += n;
    },
  });
}

/**
 * A generated stream of `size` pseudo-random bytes in 1 MiB chunks, hashed
 * as it is produced; `sha256()` is valid once it has been read to the end.
 */
export function generatedStream(size: number): {
  stream: ReadableStream<Uint8Array>;
  sha256(): string;
} {
  const base = randomBytes(MIB);
  const hash = new Sha256Counter();
  let sent = 0;
  let digest = "";
  let n = 0;
  return {
    stream: new ReadableStream({
      pull(c) {
        if (sent >= size) {
          digest = hash.hex();
          return c.close();
        }
        const chunk = base.slice(0, Math.min(MIB, size - sent));
        new DataView(chunk.buffer).setUint32(0, n++); // every chunk differs
        hash.update(chunk);
        sent += chunk.length;
        c.enqueue(chunk);
      },
    }, { highWaterMark: 0 }),
    sha256: () => digest,
  };
}

/** Reads a stream to the end into one array. */
export async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Hex sha256 by WebCrypto (an implementation independent of the stores' node:crypto). */
export async function webSha256(data: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Drains a stream, returning its byte count and sha256. */
export async function drain(
  stream: ReadableStream<Uint8Array>,
): Promise<{ size: number; sha256: string }> {
  const h = new Sha256Counter();
  let size = 0;
  for await (const c of stream) {
    h.update(c);
    size += c.length;
  }
  return { size, sha256: h.hex() };
}

async function listAll(store: CheckpointStore, prefix: string): Promise<ObjectInfo[]> {
  return await Array.fromAsync(store.list(prefix));
}

/** A stream that sends `first` and then stalls until cancelled. */
function stallingStream(first: Uint8Array): ReadableStream<Uint8Array> {
  let sent = false;
  return new ReadableStream({
    pull(c) {
      if (!sent) {
        sent = true;
        c.enqueue(first);
        return;
      }
      return new Promise(() => {}); // never resolves: the writer has to abort
    },
  }, { highWaterMark: 0 });
}

/** Registers one conformance test; the fixture is opened before and cleaned after it. */
type Register = (name: string, fn: (f: ConformanceFixture) => Promise<void>) => void;

/** Conformance: put, get, list, delete and overwrite. */
function registerRoundTrips(t: Register): void {
  t("put/get round trip keeps bytes, sha256 and metadata", async ({ store }) => {
    const data = randomBytes(3 * MIB + 17);
    const expected = await webSha256(data);
    let progress = 0;
    const info = await store.put("ns/pod-a/ckpt-1/archive.tar", streamOf(data), {
      metadata: { container: "app", "criu-version": "4.1.1", note: "ünïcode ok" },
      onProgress: (n) => progress = n,
    });
    assertEquals(info.sha256, expected);
    assertEquals(info.size, data.length);
    assertEquals(progress, data.length);
    const back = await readAll(await store.get("ns/pod-a/ckpt-1/archive.tar"));
    assertEquals(back.length, data.length);
    assertEquals(await webSha256(back), expected);
    const st = await store.stat("ns/pod-a/ckpt-1/archive.tar");
    assert(st, "stat after put");
    assertEquals(st.sha256, expected);
    assertEquals(st.size, data.length);
    assertEquals(st.metadata, { container: "app", "criu-version": "4.1.1", note: "ünïcode ok" });
    assert(Math.abs(st.lastModified.getTime() - Date.now()) < 60_000, "lastModified is recent");
    assertEquals(await store.stat("ns/pod-a/ckpt-1/other"), undefined);
  });

  t("empty object round trip", async ({ store }) => {
    const info = await store.put("ns/pod/c/empty", streamOf(new Uint8Array(0)));
    assertEquals(info.size, 0);
    assertEquals(info.sha256, await webSha256(new Uint8Array(0)));
    assertEquals((await readAll(await store.get("ns/pod/c/empty"))).length, 0);
  });

  t("list by prefix returns only complete objects, sorted", async ({ store }) => {
    const keys = ["ns/pod-a/c1/f1", "ns/pod-a/c2/f1", "ns/pod-a/c2/f2", "ns/pod-b/c1/f1"];
    for (const k of keys) await store.put(k, streamOf(randomBytes(1000)));
    // An upload in flight must not list.
    const ac = new AbortController();
    const pending = store.put("ns/pod-a/c3/f1", stallingStream(randomBytes(6 * MIB)), {
      signal: ac.signal,
    }).catch((e) => e);
    await new Promise((r) => setTimeout(r, 300));
    assertEquals((await listAll(store, "ns/pod-a/")).map((o) => o.key), keys.slice(0, 3));
    assertEquals((await listAll(store, "ns/pod-")).map((o) => o.key), keys);
    assertEquals((await listAll(store, "ns/pod-a/c1")).map((o) => o.key), ["ns/pod-a/c1/f1"]);
    assertEquals((await listAll(store, "")).map((o) => o.key), keys);
    assertEquals(await listAll(store, "other/"), []);
    const one = (await listAll(store, "ns/pod-b/"))[0];
    assertEquals(one.size, 1000);
    assertEquals(one.sha256.length, 64);
    ac.abort();
    const err = await pending;
    assert(isStorageError(err, "Aborted"), `aborted put rejects with Aborted, got ${err}`);
  });

  t("delete removes the object; deleting a missing key is fine", async ({ store }) => {
    await store.put("ns/pod/c/f", streamOf(randomBytes(10)));
    await store.delete("ns/pod/c/f");
    assertEquals(await store.stat("ns/pod/c/f"), undefined);
    assertEquals(await listAll(store, "ns/"), []);
    await assertRejects(() => store.get("ns/pod/c/f"), StorageError, "ns/pod/c/f");
    await store.delete("ns/pod/c/f");
  });

  t("overwrite replaces content and digest", async ({ store }) => {
    const a = randomBytes(5000);
    const b = randomBytes(7000);
    await store.put("ns/pod/c/f", streamOf(a), { metadata: { v: "1" } });
    await store.put("ns/pod/c/f", streamOf(b), { metadata: { v: "2" } });
    const back = await readAll(await store.get("ns/pod/c/f"));
    assertEquals(await webSha256(back), await webSha256(b));
    const st = await store.stat("ns/pod/c/f");
    assertEquals(st?.sha256, await webSha256(b));
    assertEquals(st?.metadata, { v: "2" });
    assertEquals((await listAll(store, "ns/")).length, 1);
  });
}

/** Conformance: big objects, missing and invalid keys, corruption. */
function registerEdges(t: Register, opts: ConformanceOptions): void {
  t(
    `big object (${(opts.bigBytes ?? 64 * MIB) / MIB} MiB) streams both ways`,
    async ({ store }) => {
      const size = opts.bigBytes ?? 64 * MIB;
      const gen = generatedStream(size);
      const info = await store.put("ns/pod/c/big", gen.stream, { size });
      assertEquals(info.size, size);
      assertEquals(info.sha256, gen.sha256());
      const back = await drain(await store.get("ns/pod/c/big"));
      assertEquals(back, { size, sha256: gen.sha256() });
    },
  );

  t("get of a missing key is NotFound naming the key", async ({ store }) => {
    const err = await assertRejects(() => store.get("ns/pod/c/missing"), StorageError);
    assertEquals(err.code, "NotFound");
    assertStringIncludes(err.message, '"ns/pod/c/missing"');
    assertEquals(err.provider, store.provider);
  });

  t("invalid keys are refused", async ({ store }) => {
    for (const key of ["", "/abs", "a/../b", "a//b", ".lpm-data/x", "a/b.meta.json"]) {
      const err = await assertRejects(() => store.stat(key), StorageError);
      assertEquals(err.code, "InvalidKey", key);
    }
  });

  t("corrupted stored data fails the read with DigestMismatch naming both digests", async (f) => {
    const data = randomBytes(200_000);
    const good = await webSha256(data);
    await f.store.put("ns/pod/c/f", streamOf(data));
    await f.corrupt("ns/pod/c/f");
    const stream = await f.store.get("ns/pod/c/f");
    const err = await assertRejects(() => drain(stream), StorageError);
    assertEquals(err.code, "DigestMismatch");
    assertStringIncludes(err.message, '"ns/pod/c/f"');
    assertStringIncludes(err.message, good);
    const other = err.message.match(/[0-9a-f]{64}/g)?.filter((d) => d !== good) ?? [];
    assertEquals(other.length, 1, `message names the actual digest too: ${err.message}`);
  });
}

/** Conformance: the file helpers (storeFile/fetchToFile). */
function registerFiles(t: Register): void {
  t("file round trip (storeFile/fetchToFile): bytes, sha256, expectations", async (f) => {
    const dir = await Deno.makeTempDir({ prefix: "lpm-conf-files-" });
    try {
      const data = randomBytes(9 * MIB + 5);
      const good = await webSha256(data);
      await Deno.writeFile(`${dir}/src.tar`, data);
      let progress = 0;
      const info = await storeFile(f.store, "ns/pod/c/file.tar", `${dir}/src.tar`, {
        size: data.length,
        metadata: { container: "app" },
        onProgress: (n) => progress = n,
      });
      assertEquals(info.sha256, good);
      assertEquals(info.size, data.length);
      assertEquals(progress, data.length);
      assertEquals((await f.store.stat("ns/pod/c/file.tar"))?.metadata, { container: "app" });
      assertEquals(await webSha256(await readAll(await f.store.get("ns/pod/c/file.tar"))), good);
      const got = await fetchToFile(f.store, "ns/pod/c/file.tar", `${dir}/back.tar`);
      assertEquals(got.sha256, good);
      assertEquals(await webSha256(await Deno.readFile(`${dir}/back.tar`)), good);
      // Wrong expectations publish nothing.
      for (const bad of [{ sha256: "0".repeat(64) }, { size: data.length + 1 }]) {
        const err = await assertRejects(
          () => storeFile(f.store, "ns/pod/c/other.tar", `${dir}/src.tar`, bad),
          StorageError,
        );
        assertMatch(err.code, /DigestMismatch|SizeMismatch/);
        assertStringIncludes(err.message, "nothing was published");
      }
      assertEquals(await f.store.stat("ns/pod/c/other.tar"), undefined);
      assertEquals(
        (await listAll(f.store, "ns/")).map((o) => o.key),
        ["ns/pod/c/file.tar"],
      );
      // A missing key: NotFound, and no file appears.
      const nf = await assertRejects(
        () => fetchToFile(f.store, "ns/pod/c/missing.tar", `${dir}/missing.tar`),
        StorageError,
      );
      assertEquals(nf.code, "NotFound");
      assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["back.tar", "src.tar"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  t("fetchToFile of corrupted data fails with DigestMismatch and leaves no file", async (f) => {
    const dir = await Deno.makeTempDir({ prefix: "lpm-conf-files-" });
    try {
      const data = randomBytes(3 * MIB);
      const good = await webSha256(data);
      await f.store.put("ns/pod/c/f", streamOf(data));
      await f.corrupt("ns/pod/c/f");
      const err = await assertRejects(
        () => fetchToFile(f.store, "ns/pod/c/f", `${dir}/out.tar`),
        StorageError,
      );
      assertEquals(err.code, "DigestMismatch");
      assertStringIncludes(err.message, '"ns/pod/c/f"');
      assertStringIncludes(err.message, good);
      assertEquals([...Deno.readDirSync(dir)], [], "a file was left behind");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/** Conformance: failed, aborted and killed writers. */
function registerFailures(t: Register): void {
  t("put with a wrong sha256 publishes nothing and keeps the old version", async (f) => {
    const old = randomBytes(1000);
    await f.store.put("ns/pod/c/f", streamOf(old));
    const err = await assertRejects(
      () => f.store.put("ns/pod/c/f", streamOf(randomBytes(2000)), { sha256: "0".repeat(64) }),
      StorageError,
    );
    assertEquals(err.code, "DigestMismatch");
    assertStringIncludes(err.message, "0".repeat(64));
    await assertRejects(
      () => f.store.put("ns/pod/c/g", streamOf(randomBytes(2000)), { sha256: "1".repeat(64) }),
      StorageError,
    );
    assertEquals(await f.store.stat("ns/pod/c/g"), undefined);
    assertEquals((await listAll(f.store, "ns/")).map((o) => o.key), ["ns/pod/c/f"]);
    assertEquals(
      await webSha256(await readAll(await f.store.get("ns/pod/c/f"))),
      await webSha256(old),
    );
    // The right digest is accepted.
    const ok = randomBytes(3000);
    const info = await f.store.put("ns/pod/c/g", streamOf(ok), {
      sha256: await webSha256(ok),
      size: 3000,
    });
    assertEquals(info.sha256, await webSha256(ok));
    assertEquals(await f.debris(), 0);
  });

  t("abort mid-upload publishes nothing and GC leaves no debris", async (f) => {
    const ac = new AbortController();
    const big = generatedStream(1 << 30);
    const p = f.store.put("ns/pod/c/aborted", big.stream, {
      signal: ac.signal,
      onProgress: (n) => {
        if (n >= 40 * MIB) ac.abort(new Error("test abort"));
      },
    });
    const err = await assertRejects(() => p, StorageError);
    assertEquals(err.code, "Aborted");
    assertEquals(await f.store.stat("ns/pod/c/aborted"), undefined);
    assertEquals(await listAll(f.store, ""), []);
    await f.store.cleanDebris({ graceMs: 0 });
    assertEquals(await f.debris(), 0);
  });

  t("a writer killed mid-upload leaves nothing listed; GC removes its debris", async (f) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        CHILD,
        JSON.stringify({ spec: f.classSpec, secret: f.secret }),
        "ns/pod/c/killed",
        String(1 << 30),
        "slow",
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    // Wait until the child has pushed some data, then kill it hard.
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (
      !/progress (\d+)/.test(out) ||
      Number(out.match(/progress (\d+)/g)!.at(-1)!.split(" ")[1]) < 40 * MIB
    ) {
      const { done, value } = await reader.read();
      if (done) throw new Error(`child ended early: ${out}`);
      out += value;
    }
    child.kill("SIGKILL");
    await child.status;
    await reader.cancel().catch(() => {});
    assertEquals(await f.store.stat("ns/pod/c/killed"), undefined);
    assertEquals(await listAll(f.store, ""), []);
    assertGreater(await f.debris(), 0, "a killed writer leaves debris");
    // A grace period protects uploads in flight.
    assertEquals(await f.store.cleanDebris({ graceMs: 3600_000 }), 0);
    assertGreater(await f.store.cleanDebris({ graceMs: 0 }), 0);
    assertEquals(await f.debris(), 0);
  });
}

/** Registers the conformance tests for one provider. */
export function registerConformance(opts: ConformanceOptions): void {
  const register = (d: Deno.TestDefinition) => opts.needs ? envTest(opts.needs, d) : Deno.test(d);
  const t: Register = (name, fn) =>
    register({
      name: `${opts.name} conformance: ${name}`,
      ignore: opts.ignore,
      sanitizeOps: false,
      sanitizeResources: false,
      async fn() {
        const f = await opts.open();
        try {
          await fn(f);
        } finally {
          await f.cleanup();
        }
      },
    });
  registerRoundTrips(t);
  registerEdges(t, opts);
  registerFiles(t);
  registerFailures(t);
}
