/**
 * The TLS fields of a CheckpointStorageClass on a real MinIO serving HTTPS:
 * `s3.caBundle`, `s3.insecureSkipTLSVerify` and `minio.caBundle`. The test
 * starts its own MinIO (the environment's speaks plain HTTP) with a serving
 * certificate for 127.0.0.1 from a fresh CA (`Pki`, in
 * `$HOME/.minio/certs/`, where MinIO looks for it), builds each store from
 * its class spec as the agents do (`createStore`) and checks both ways: with
 * the CA in `caBundle` a put/get round trip works; without it (or with
 * another CA) it fails with an error that says the certificate is not
 * trusted and names the endpoint.
 *
 * The `minio` provider has no `insecureSkipTLSVerify` (its schema lacks the
 * field and minio-js is given only the CA): a MinIO behind a certificate the
 * agents cannot verify needs `caBundle`, or the `s3` provider with
 * `insecureSkipTLSVerify: true`.
 */
import { S3Client } from "@aws-sdk/client-s3";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { Agent as HttpsAgent } from "node:https";
import { assertEquals, assertRejects, assertStringIncludes } from "@std/assert";
import { freePort, minioServer, Pki, waitFor } from "../localenv/mod.ts";
import { envTest } from "../testing/env.ts";
import { bucketClassSpec, type S3ServerInfo } from "../testing/storage_fixtures.ts";
import { drain, generatedStream } from "../testing/storage_conformance.ts";
import type { CheckpointStorageClassSpec } from "../api/mod.ts";
import { type CheckpointStore, createStore, StorageError } from "../storage/mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** A MinIO serving HTTPS on 127.0.0.1 with a certificate from its own CA. */
interface TlsMinio {
  info: S3ServerInfo;
  /** PEM of the CA that issued the serving certificate. */
  ca: string;
  /** PEM of another CA, which did not. */
  otherCa: string;
  stop(): Promise<void>;
}

async function startTlsMinio(dir: string): Promise<TlsMinio> {
  const pki = await Pki.create(`${dir}/pki`, "lpm-tls-test-ca");
  const other = await Pki.create(`${dir}/other-pki`, "lpm-other-ca");
  const pair = await pki.issue("minio", {
    cn: "127.0.0.1",
    sans: ["127.0.0.1"],
    usage: ["server"],
  });
  // MinIO serves TLS when $HOME/.minio/certs holds public.crt and private.key.
  const certs = `${dir}/home/.minio/certs`;
  await Deno.mkdir(certs, { recursive: true });
  await Deno.copyFile(pair.cert, `${certs}/public.crt`);
  await Deno.copyFile(pair.key, `${certs}/private.key`);
  await Deno.mkdir(`${dir}/data`);
  const port = freePort();
  const accessKey = "lpm-tls-admin";
  const secretKey = crypto.randomUUID().replaceAll("-", "");
  const server = minioServer({
    port,
    dataDir: `${dir}/data`,
    accessKey,
    secretKey,
    home: `${dir}/home`,
  });
  const child = new Deno.Command(server.args[0], {
    args: server.args.slice(1),
    env: server.env,
    stdout: "null",
    stderr: "null",
  }).spawn();
  const ca = await Deno.readTextFile(pki.ca.cert);
  const info = {
    endpoint: `https://127.0.0.1:${port}`,
    accessKey,
    secretKey,
    bucket: "lpm-tls",
    region: "us-east-1",
  };
  const stop = async () => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.status;
  };
  try {
    const http = Deno.createHttpClient({ caCerts: [ca] });
    try {
      await waitFor(async () => {
        const r = await fetch(`${info.endpoint}/minio/health/ready`, { client: http })
          .catch(() => undefined);
        await r?.body?.cancel();
        return r?.ok ?? false;
      }, { what: "MinIO over TLS /minio/health/ready", timeoutMs: 60_000 });
    } finally {
      http.close();
    }
    const s3 = new S3Client({
      endpoint: info.endpoint,
      region: info.region,
      forcePathStyle: true,
      credentials: { accessKeyId: accessKey, secretAccessKey: secretKey },
      requestHandler: { httpsAgent: new HttpsAgent({ ca }) },
    });
    try {
      await s3.send(new CreateBucketCommand({ Bucket: info.bucket }));
    } finally {
      s3.destroy();
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { info, ca, otherCa: await Deno.readTextFile(other.ca.cert), stop };
}

/** Writes, reads back and removes one object; true when both sha256 match what was written. */
async function roundTrip(store: CheckpointStore, key: string): Promise<boolean> {
  const gen = generatedStream(1 << 20);
  try {
    const put = await store.put(key, gen.stream);
    const got = await drain(await store.get(key));
    await store.delete(key);
    return put.sha256 === gen.sha256() && got.sha256 === gen.sha256();
  } finally {
    store.close?.();
  }
}

/** The class spec of `provider` on `m` with `tls` merged into its provider section. */
function tlsSpec(
  provider: "s3" | "minio",
  m: TlsMinio,
  tls: { caBundle?: string; insecureSkipTLSVerify?: boolean },
): { spec: CheckpointStorageClassSpec; secret: Record<string, string> } {
  const { spec, secret } = bucketClassSpec(provider, m.info, `tls-${provider}/`);
  const section = provider === "s3" ? { s3: { ...spec.s3!, ...tls } } : {
    minio: { ...spec.minio!, ...tls },
  };
  return { spec: { ...spec, ...section }, secret };
}

/** Asserts a put through `spec` fails because the server's certificate is not trusted. */
async function assertUntrusted(
  m: TlsMinio,
  c: { spec: CheckpointStorageClassSpec; secret: Record<string, string> },
): Promise<void> {
  const store = createStore(c.spec, { secret: c.secret });
  try {
    const err = await assertRejects(
      () => store.put("ns/pod/id/untrusted", generatedStream(1 << 16).stream),
      StorageError,
    );
    assertStringIncludes(err.message, m.info.endpoint);
    assertStringIncludes(
      err.message,
      `the TLS certificate of "${m.info.endpoint}" is not trusted (`,
    );
    assertStringIncludes(err.message, "set the class's caBundle");
  } finally {
    store.close?.();
  }
}

envTest({ starts: ["minio"] }, {
  name:
    "storage class TLS: s3.caBundle, s3.insecureSkipTLSVerify and minio.caBundle on a MinIO serving HTTPS",
  ...opts,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "lpm-tls-minio-" });
    const m = await startTlsMinio(dir);
    try {
      for (const provider of ["s3", "minio"] as const) {
        const ok = tlsSpec(provider, m, { caBundle: m.ca });
        assertEquals(
          await roundTrip(createStore(ok.spec, { secret: ok.secret }), "ns/pod/id/a"),
          true,
          `${provider} with caBundle`,
        );
        await assertUntrusted(m, tlsSpec(provider, m, {}));
        await assertUntrusted(m, tlsSpec(provider, m, { caBundle: m.otherCa }));
      }
      // s3 only: skipping verification works without the CA.
      const skip = tlsSpec("s3", m, { insecureSkipTLSVerify: true });
      assertEquals(
        await roundTrip(createStore(skip.spec, { secret: skip.secret }), "ns/pod/id/skip"),
        true,
        "s3 with insecureSkipTLSVerify",
      );
      // insecureSkipTLSVerify: false is the default: it verifies.
      await assertUntrusted(m, tlsSpec("s3", m, { insecureSkipTLSVerify: false }));
    } finally {
      await m.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
