/** A real MinIO server on loopback with a bucket and credentials. @module */
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { type ManagedProcess, startProcess } from "./_process.ts";
import { freePort, waitFor } from "./_wait.ts";
import { tool } from "./tools.ts";

/** Connection details of the MinIO server. */
export interface MinioInfo {
  /** http endpoint, e.g. http://127.0.0.1:9000 */
  endpoint: string;
  /** Access key (root user). */
  accessKey: string;
  /** Secret key (root password). */
  secretKey: string;
  /** A bucket created at start. */
  bucket: string;
  /** Region MinIO answers for. */
  region: string;
  /** Data directory (for fault tests). */
  dataDir: string;
}

/** Builds an S3 client for the harness MinIO. */
export function minioS3Client(info: MinioInfo): S3Client {
  return new S3Client({
    endpoint: info.endpoint,
    region: info.region,
    forcePathStyle: true,
    credentials: { accessKeyId: info.accessKey, secretAccessKey: info.secretKey },
  });
}

/**
 * The MinIO server command line (argv and environment) serving `dataDir` on
 * 127.0.0.1:`port` with root credentials: one definition for the local
 * environment and for tests that restart MinIO on the same data.
 */
export function minioServer(opts: {
  port: number | string;
  dataDir: string;
  accessKey: string;
  secretKey: string;
  home: string;
}): { args: string[]; env: Record<string, string> } {
  return {
    args: [
      tool("minio"),
      "server",
      "--quiet",
      "--address",
      `127.0.0.1:${opts.port}`,
      "--console-address",
      `127.0.0.1:${freePort()}`,
      opts.dataDir,
    ],
    env: {
      MINIO_ROOT_USER: opts.accessKey,
      MINIO_ROOT_PASSWORD: opts.secretKey,
      MINIO_BROWSER: "off",
      MINIO_UPDATE: "off",
      HOME: opts.home,
    },
  };
}

/** Starts MinIO with its data in `dir`, creates `bucket`. */
export async function startMinio(
  dir: string,
  opts: { logDir: string; bucket?: string; port?: number },
): Promise<{ info: MinioInfo; process: ManagedProcess }> {
  const port = opts.port ?? freePort();
  const dataDir = `${dir}/data`;
  await Deno.mkdir(dataDir, { recursive: true });
  const accessKey = "lpm-admin";
  const secretKey = crypto.randomUUID().replaceAll("-", "");
  const server = minioServer({ port, dataDir, accessKey, secretKey, home: dir });
  const proc = startProcess("minio", server.args, {
    logPath: `${opts.logDir}/minio.log`,
    env: server.env,
  });
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitFor(async () => {
      const r = await fetch(`${endpoint}/minio/health/ready`);
      await r.body?.cancel();
      return r.ok;
    }, { what: "MinIO /minio/health/ready", timeoutMs: 60_000, exited: proc.exited });
    const info: MinioInfo = {
      endpoint,
      accessKey,
      secretKey,
      bucket: opts.bucket ?? "lpm-checkpoints",
      region: "us-east-1",
      dataDir,
    };
    const s3 = minioS3Client(info);
    try {
      await s3.send(new CreateBucketCommand({ Bucket: info.bucket }));
    } finally {
      s3.destroy();
    }
    return { info, process: proc };
  } catch (err) {
    await proc.stop();
    throw err;
  }
}
