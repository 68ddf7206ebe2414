/** Conformance fixtures for the real stores (test support, not part of the public face). @module */
import type { ConformanceFixture } from "./storage_conformance.ts";
import type { CheckpointStorageClassSpec } from "../api/mod.ts";
import { createStore } from "../storage/factory.ts";
import type { BucketStore } from "../storage/_bucket_store.ts";
import { DATA_DIR } from "../storage/_bucket_store.ts";
import { S3Client } from "@aws-sdk/client-s3";
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from "@aws-sdk/client-s3";

/** A fixture for `local` or `pvc` on a fresh temp directory. */
export async function openFsFixture(
  provider: "local" | "pvc",
): Promise<ConformanceFixture & { dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: `lpm-storage-${provider}-` });
  const classSpec: CheckpointStorageClassSpec = provider === "local"
    ? { provider: "local", local: { path: `${dir}/store` } }
    : { provider: "pvc", pvc: { claimName: "checkpoints", mountPath: dir, subPath: "lpm" } };
  const root = provider === "local" ? `${dir}/store` : `${dir}/lpm`;
  const store = createStore(classSpec);
  return {
    dir,
    store,
    classSpec,
    async corrupt(key) {
      const f = await Deno.open(`${root}/${key}`, { read: true, write: true });
      try {
        const size = (await f.stat()).size;
        const pos = Math.floor(size / 2);
        const b = new Uint8Array(1);
        await f.seek(pos, Deno.SeekMode.Start);
        await f.read(b);
        b[0] ^= 0xff;
        await f.seek(pos, Deno.SeekMode.Start);
        await f.write(b);
      } finally {
        f.close();
      }
    },
    async debris() {
      let n = 0;
      const walk = async (d: string) => {
        let entries: Deno.DirEntry[] = [];
        try {
          entries = await Array.fromAsync(Deno.readDir(d));
        } catch {
          return;
        }
        const names = new Set(entries.map((e) => e.name));
        for (const e of entries) {
          if (e.isDirectory) await walk(`${d}/${e.name}`);
          else if (e.name.startsWith(".lpm-tmp-")) n++;
          else if (e.name.endsWith(".meta.json")) {
            if (!names.has(e.name.slice(0, -".meta.json".length))) n++;
          } else if (!names.has(`${e.name}.meta.json`)) n++;
        }
      };
      await walk(root);
      return n;
    },
    async cleanup() {
      store.close?.();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Connection details of an S3 server (the harness's MinIO info). */
export interface S3ServerInfo {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  bucket: string;
  region: string;
}

/** A raw S3 client for inspecting and damaging what the stores wrote. */
export function rawS3(info: S3ServerInfo): S3Client {
  return new S3Client({
    endpoint: info.endpoint,
    region: info.region,
    forcePathStyle: true,
    credentials: { accessKeyId: info.accessKey, secretAccessKey: info.secretKey },
  });
}

/** The class spec of provider `s3` or `minio` for `info` under `prefix`. */
export function bucketClassSpec(
  provider: "s3" | "minio",
  info: S3ServerInfo,
  prefix: string,
): { spec: CheckpointStorageClassSpec; secret: Record<string, string> } {
  const ref = { name: "minio-creds", namespace: "lpm-system" };
  const spec: CheckpointStorageClassSpec = provider === "s3"
    ? {
      provider: "s3",
      s3: {
        endpoint: info.endpoint,
        bucket: info.bucket,
        region: info.region,
        prefix,
        forcePathStyle: true,
      },
      credentialsSecretRef: ref,
    }
    : {
      provider: "minio",
      minio: { endpoint: info.endpoint, bucket: info.bucket, region: info.region, prefix },
      credentialsSecretRef: ref,
    };
  return { spec, secret: { accessKeyId: info.accessKey, secretAccessKey: info.secretKey } };
}

/** A fixture for `s3` or `minio` under a unique prefix of the server's bucket. */
export function openBucketFixture(
  provider: "s3" | "minio",
  info: S3ServerInfo,
  prefix = `conformance-${provider}-${crypto.randomUUID()}/`,
): Promise<ConformanceFixture & { prefix: string; raw: S3Client }> {
  const { spec, secret } = bucketClassSpec(provider, info, prefix);
  const store = createStore(spec, { secret }) as BucketStore;
  const raw = rawS3(info);
  const Bucket = info.bucket;
  return Promise.resolve({
    prefix,
    raw,
    store,
    classSpec: spec,
    secret,
    async corrupt(key) {
      const head = await store.stat(key);
      if (!head) throw new Error(`No object "${key}" to corrupt`);
      // Find the blob the manifest points at and rewrite it with one byte flipped.
      const list = await raw.send(
        new ListObjectsV2Command({ Bucket, Prefix: `${prefix}${DATA_DIR}${key}/` }),
      );
      const name = list.Contents![0].Key!;
      const obj = await raw.send(new GetObjectCommand({ Bucket, Key: name }));
      const bytes = await obj.Body!.transformToByteArray();
      bytes[Math.floor(bytes.length / 2)] ^= 0xff;
      await raw.send(
        new PutObjectCommand({ Bucket, Key: name, Body: bytes, Metadata: obj.Metadata }),
      );
    },
    async debris() {
      const uploads = await raw.send(new ListMultipartUploadsCommand({ Bucket }));
      const pending = (uploads.Uploads ?? []).filter((u) => u.Key!.startsWith(prefix));
      const manifests = new Set<string>();
      const blobs: string[] = [];
      const objects = await raw.send(new ListObjectsV2Command({ Bucket, Prefix: prefix }));
      for (const o of objects.Contents ?? []) {
        const rel = o.Key!.slice(prefix.length);
        if (rel.startsWith(DATA_DIR)) blobs.push(rel.slice(DATA_DIR.length));
        else manifests.add(rel);
      }
      let orphans = 0;
      for (const b of blobs) {
        const key = b.slice(0, b.lastIndexOf("/"));
        const st = manifests.has(key) ? await store.stat(key) : undefined;
        if (!st) orphans++;
      }
      return pending.length + orphans;
    },
    async cleanup() {
      for (;;) {
        const objects = await raw.send(new ListObjectsV2Command({ Bucket, Prefix: prefix }));
        const keys = (objects.Contents ?? []).map((o) => ({ Key: o.Key! }));
        if (!keys.length) break;
        await raw.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: keys } }));
      }
      const uploads = await raw.send(new ListMultipartUploadsCommand({ Bucket }));
      for (const u of (uploads.Uploads ?? []).filter((u) => u.Key!.startsWith(prefix))) {
        await raw.send(
          new AbortMultipartUploadCommand({ Bucket, Key: u.Key!, UploadId: u.UploadId! }),
        );
      }
      store.close?.();
      raw.destroy();
    },
  });
}
