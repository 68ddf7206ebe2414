/**
 * CheckpointStorageClass fields of the bucket providers that no other test
 * exercises, on the environment's real MinIO: `credentialsSecretRef`'s
 * `accessKeyIdKey` / `secretAccessKeyKey` (a Secret with other key names) and
 * `s3.forcePathStyle` (an endpoint by host name, where the S3 client would
 * otherwise put the bucket in the host name). Each class is built from its
 * spec as the agents build it (`createStore`), and each case is checked both
 * ways: the field set right works, and left out it fails.
 */
import { assertEquals, assertMatch, assertRejects, assertStringIncludes } from "@std/assert";
import { envTest, requirePart } from "../testing/env.ts";
import { drain, generatedStream } from "../testing/storage_conformance.ts";
import type { CheckpointStorageClassSpec } from "../api/mod.ts";
import { type CheckpointStore, createStore, isStorageError } from "../storage/mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** Writes, reads back and removes one object; resolves with what was read. */
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

envTest({ uses: ["minio"] }, {
  name:
    "storage class fields: credentialsSecretRef.accessKeyIdKey and secretAccessKeyKey name the Secret's keys (minio and s3)",
  ...opts,
  async fn() {
    const m = requirePart("minio");
    const prefix = `fields-${crypto.randomUUID().slice(0, 6)}/`;
    // The data of a Secret written in AWS's own names, not lpm's defaults.
    const secret = { AWS_ACCESS_KEY_ID: m.accessKey, AWS_SECRET_ACCESS_KEY: m.secretKey };
    const ref = { name: "aws-style", namespace: "lpm-system" };
    const named = {
      ...ref,
      accessKeyIdKey: "AWS_ACCESS_KEY_ID",
      secretAccessKeyKey: "AWS_SECRET_ACCESS_KEY",
    };
    const specs: CheckpointStorageClassSpec[] = [
      {
        provider: "minio",
        minio: { endpoint: m.endpoint, bucket: m.bucket, region: m.region, prefix },
        credentialsSecretRef: named,
      },
      {
        provider: "s3",
        s3: { endpoint: m.endpoint, bucket: m.bucket, region: m.region, prefix },
        credentialsSecretRef: named,
      },
    ];
    for (const spec of specs) {
      assertEquals(await roundTrip(createStore(spec, { secret }), "ns/pod/id/a"), true);
      // Without the key names the defaults are looked up, and the error names the missing key.
      const err = (() => {
        try {
          createStore({ ...spec, credentialsSecretRef: ref }, { secret });
        } catch (e) {
          return e;
        }
      })();
      assertEquals(isStorageError(err, "InvalidConfig"), true, String(err));
      assertStringIncludes((err as Error).message, '"accessKeyId"');
      // The id key right, the secret key not: that one is named.
      const half = { ...ref, accessKeyIdKey: "AWS_ACCESS_KEY_ID" };
      try {
        createStore({ ...spec, credentialsSecretRef: half }, { secret });
        throw new Error("a class naming a wrong secretAccessKeyKey was accepted");
      } catch (e) {
        assertStringIncludes((e as Error).message, '"secretAccessKey"');
      }
    }
  },
});

envTest({ uses: ["minio"] }, {
  name:
    "storage class fields: s3.forcePathStyle keeps the bucket in the path for an endpoint named by host; false puts it in the host name and fails",
  ...opts,
  async fn() {
    const m = requirePart("minio");
    // A host name, not an IP: for an IP the S3 client uses path style whatever the field says.
    const endpoint = m.endpoint.replace("127.0.0.1", "localhost");
    const prefix = `fields-${crypto.randomUUID().slice(0, 6)}/`;
    const secret = { accessKeyId: m.accessKey, secretAccessKey: m.secretKey };
    const spec = (forcePathStyle: boolean): CheckpointStorageClassSpec => ({
      provider: "s3",
      s3: { endpoint, bucket: m.bucket, region: m.region, prefix, forcePathStyle },
      credentialsSecretRef: { name: "minio", namespace: "lpm-system" },
    });
    assertEquals(await roundTrip(createStore(spec(true), { secret }), "ns/pod/id/a"), true);
    // Virtual-host style: the request goes to "<bucket>.localhost", which this MinIO
    // (no MINIO_DOMAIN) does not serve as a bucket, if the name resolves at all.
    const err = await assertRejects(() =>
      roundTrip(createStore(spec(false), { secret }), "ns/pod/id/b")
    );
    assertMatch(String(err), new RegExp(`${m.bucket}\\.localhost|NoSuchBucket|InvalidBucketName`));
  },
});
