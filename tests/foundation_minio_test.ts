/** Smoke test: MinIO is real, and both S3 clients of record agree on its contents. */
import { Buffer } from "node:buffer";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { assertEquals } from "@std/assert";
import { minioClient } from "../testing/e2e.ts";
import { envTest, requirePart } from "../testing/env.ts";
import { sha256Hex } from "../base/sha256.ts";
import { minioS3Client } from "../localenv/mod.ts";

envTest({ uses: ["minio"] }, {
  name:
    "MinIO: an object written with @aws-sdk/client-s3 reads back through minio-js with the same sha256",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const info = requirePart("minio");
    const data = crypto.getRandomValues(new Uint8Array(3 * 1024 * 1024 + 17).subarray(0, 65536));
    const big = new Uint8Array(3 * 1024 * 1024 + 17);
    for (let i = 0; i < big.length; i += data.length) {
      big.set(data.subarray(0, Math.min(data.length, big.length - i)), i);
    }
    const key = `smoke/${crypto.randomUUID()}.bin`;
    const s3 = minioS3Client(info);
    try {
      await s3.send(new PutObjectCommand({ Bucket: info.bucket, Key: key, Body: big }));
      const mc = minioClient(info);
      const stream = await mc.getObject(info.bucket, key);
      const chunks: Uint8Array[] = [];
      for await (const c of stream) chunks.push(c as Uint8Array);
      const got = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let off = 0;
      for (const c of chunks) {
        got.set(c, off);
        off += c.length;
      }
      assertEquals(got.length, big.length);
      assertEquals(sha256Hex(got), sha256Hex(big));
      // And the reverse direction.
      const key2 = `${key}.2`;
      await mc.putObject(info.bucket, key2, Buffer.from(got));
      const back = await s3.send(new GetObjectCommand({ Bucket: info.bucket, Key: key2 }));
      assertEquals(sha256Hex(await back.Body!.transformToByteArray()), sha256Hex(big));
      await mc.removeObjects(info.bucket, [key, key2]);
    } finally {
      s3.destroy();
    }
  },
});
