/**
 * Storage under faults, against real servers and real filesystems: MinIO
 * killed mid-upload, wrong credentials, a missing bucket, an unreachable
 * endpoint, a read-only directory and a full disk. Each must give a clear
 * error naming the provider and location, publish nothing, and lose nothing
 * already stored.
 */
import { assert, assertEquals, assertRejects, assertStringIncludes } from "@std/assert";
import { freePort, minioServer, startEnvironment, waitFor } from "../localenv/mod.ts";
import { envTest, requirePart } from "../testing/env.ts";
import {
  bucketClassSpec,
  openBucketFixture,
  type S3ServerInfo,
} from "../testing/storage_fixtures.ts";
import { drain, generatedStream, randomBytes, streamOf } from "../testing/storage_conformance.ts";
import { createStore, StorageError, validateStorageClass } from "../storage/mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const PROVIDERS = ["s3", "minio"] as const;

function storeFor(provider: "s3" | "minio", info: S3ServerInfo, prefix: string) {
  const { spec, secret } = bucketClassSpec(provider, info, prefix);
  return createStore(spec, { secret });
}

async function startMinioAgain(info: S3ServerInfo & { dataDir: string }, logDir: string) {
  const port = new URL(info.endpoint).port;
  const server = minioServer({
    port,
    dataDir: info.dataDir,
    accessKey: info.accessKey,
    secretKey: info.secretKey,
    home: logDir,
  });
  const child = new Deno.Command("setsid", {
    args: server.args,
    env: server.env,
    stdout: "null",
    stderr: "null",
  }).spawn();
  await waitFor(async () => {
    const r = await fetch(`${info.endpoint}/minio/health/ready`).catch(() => undefined);
    await r?.body?.cancel();
    return r?.ok ?? false;
  }, { what: "restarted MinIO", timeoutMs: 60_000 });
  return child;
}

for (const provider of PROVIDERS) {
  envTest({ starts: ["minio"] }, {
    ...opts,
    name:
      `storage faults (${provider}): MinIO killed mid-upload -> Unreachable, nothing published, old data intact`,
    async fn() {
      const env = await startEnvironment({ parts: ["minio"] });
      let again: Deno.ChildProcess | undefined;
      const info = env.info.minio!;
      const store = storeFor(provider, info, "faults/");
      try {
        const kept = randomBytes(3 << 20);
        const keptInfo = await store.put("ns/pod/c1/kept", streamOf(kept));
        const gen = generatedStream(1 << 30);
        let killed = false;
        const err = await assertRejects(
          () =>
            store.put("ns/pod/c2/big", gen.stream, {
              onProgress: (n) => {
                if (n >= 48 << 20 && !killed) {
                  killed = true;
                  for (const pid of env.info.pids) Deno.kill(-pid, "SIGKILL");
                }
              },
            }),
          StorageError,
        );
        assert(killed, "the server was killed during the upload");
        assertEquals(err.code, "Unreachable", err.message);
        assertStringIncludes(err.message, info.endpoint);
        assertStringIncludes(err.message, provider);
        // Restart on the same data directory and port: nothing half-published, nothing lost.
        again = await startMinioAgain(info, env.info.dir);
        assertEquals(await store.stat("ns/pod/c2/big"), undefined);
        assertEquals((await Array.fromAsync(store.list("ns/"))).map((o) => o.key), [
          "ns/pod/c1/kept",
        ]);
        assertEquals(await drain(await store.get("ns/pod/c1/kept")), {
          size: kept.length,
          sha256: keptInfo.sha256,
        });
        await store.cleanDebris({ graceMs: 0 });
        const f = await openBucketFixture(provider, info, "faults/");
        try {
          assertEquals(await f.debris(), 0);
        } finally {
          f.raw.destroy();
        }
      } finally {
        store.close?.();
        if (again) {
          Deno.kill(-again.pid, "SIGKILL");
          await again.status;
        }
        await env.stop();
      }
    },
  });

  envTest({ uses: ["minio"] }, {
    ...opts,
    name: `storage faults (${provider}): wrong secret -> Unauthorized naming the endpoint`,
    async fn() {
      const info = requirePart("minio");
      const bad = storeFor(
        provider,
        { ...info, secretKey: "wrong-secret-key" },
        `faults-${crypto.randomUUID()}/`,
      );
      try {
        for (
          const op of [
            () => bad.stat("ns/pod/c/f"),
            () => bad.put("ns/pod/c/f", streamOf(randomBytes(10))),
          ]
        ) {
          const err = await assertRejects(op, StorageError);
          assertEquals(err.code, "Unauthorized", err.message);
          assertStringIncludes(err.message, `"${info.endpoint}"`);
          assertStringIncludes(err.message, "credentials");
        }
        const v = await validateStorageClass(
          bucketClassSpec(provider, info, "x/").spec,
          { accessKeyId: info.accessKey, secretAccessKey: "nope-nope-nope" },
        );
        assertEquals(v.available, false);
        assertStringIncludes(v.message, "rejected the credentials");
        const ok = await validateStorageClass(bucketClassSpec(provider, info, "x/").spec, {
          accessKeyId: info.accessKey,
          secretAccessKey: info.secretKey,
        });
        assert(ok.available, ok.message);
      } finally {
        bad.close?.();
      }
    },
  });

  envTest({ uses: ["minio"] }, {
    ...opts,
    name: `storage faults (${provider}): missing bucket -> NotFound naming the bucket`,
    async fn() {
      const info = requirePart("minio");
      const store = storeFor(provider, { ...info, bucket: "no-such-bucket-lpm" }, "p/");
      try {
        for (
          const op of [
            () => store.stat("ns/pod/c/f"),
            () => store.get("ns/pod/c/f"),
            () => store.put("ns/pod/c/f", streamOf(randomBytes(10))),
          ]
        ) {
          const err = await assertRejects(op, StorageError);
          assertEquals(err.code, "NotFound", err.message);
          assertStringIncludes(err.message, '"no-such-bucket-lpm"');
        }
      } finally {
        store.close?.();
      }
    },
  });

  envTest({ uses: ["minio"] }, {
    ...opts,
    name: `storage faults (${provider}): nothing listening -> Unreachable naming the endpoint`,
    async fn() {
      const info = requirePart("minio");
      const endpoint = `http://127.0.0.1:${freePort()}`;
      const store = storeFor(provider, { ...info, endpoint }, "p/");
      try {
        const err = await assertRejects(
          () => store.put("ns/pod/c/f", streamOf(randomBytes(10))),
          StorageError,
        );
        assertEquals(err.code, "Unreachable", err.message);
        assertStringIncludes(err.message, endpoint);
      } finally {
        store.close?.();
      }
    },
  });
}

async function sh(cmd: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

for (const provider of ["local", "pvc"] as const) {
  Deno.test(`storage faults (${provider}): read-only directory -> PermissionDenied naming the path, data kept`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "lpm-storage-ro-" });
    const spec = provider === "local"
      ? { provider, local: { path: dir } } as const
      : { provider, pvc: { claimName: "ckpt", mountPath: dir } } as const;
    const store = createStore(spec);
    let mounted = false;
    try {
      const kept = await store.put("ns/pod/c1/kept", streamOf(randomBytes(1000)));
      // Root ignores permission bits, so make the directory a read-only bind mount.
      await sh("mount", "--bind", dir, dir);
      mounted = true;
      await sh("mount", "-o", "remount,bind,ro", dir);
      const err = await assertRejects(
        () => store.put("ns/pod/c2/f", streamOf(randomBytes(1000))),
        StorageError,
      );
      assertEquals(err.code, "PermissionDenied", err.message);
      assertStringIncludes(err.message, dir);
      assertStringIncludes(err.message, provider);
      const v = await validateStorageClass(spec);
      assertEquals(v.available, false);
      assertStringIncludes(v.message, "permission denied");
      assertEquals((await Array.fromAsync(store.list(""))).map((o) => o.key), ["ns/pod/c1/kept"]);
      assertEquals((await drain(await store.get("ns/pod/c1/kept"))).sha256, kept.sha256);
    } finally {
      if (mounted) await sh("umount", dir);
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("storage faults (local): full disk -> NoSpace naming the path, nothing published", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lpm-storage-full-" });
  let mounted = false;
  try {
    await sh("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir);
    mounted = true;
    const store = createStore({ provider: "local", local: { path: dir } });
    const kept = await store.put("ns/pod/c1/kept", streamOf(randomBytes(1 << 20)));
    const err = await assertRejects(
      () => store.put("ns/pod/c2/big", generatedStream(16 << 20).stream),
      StorageError,
    );
    assertEquals(err.code, "NoSpace", err.message);
    assertStringIncludes(err.message, dir);
    assertEquals((await Array.fromAsync(store.list(""))).map((o) => o.key), ["ns/pod/c1/kept"]);
    assertEquals((await drain(await store.get("ns/pod/c1/kept"))).sha256, kept.sha256);
    // The failed write cleaned its temp file: space is back.
    await store.put("ns/pod/c3/small", streamOf(randomBytes(1 << 20)));
  } finally {
    if (mounted) await sh("umount", dir);
    await Deno.remove(dir, { recursive: true });
  }
});
