/**
 * What the end-to-end tests set up in a cluster before they start: a
 * namespace pods can be created in, and a MinIO-backed
 * CheckpointStorageClass that the controller has validated.
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import type { LpmClient } from "../kube/lpm_client.ts";
import type { MinioInfo } from "./minio.ts";
import { waitFor } from "./_wait.ts";

/**
 * Creates namespace `name` and waits for its "default" ServiceAccount: the
 * API server refuses pods in a namespace until that controller made it.
 */
export async function createNamespace(core: k8s.CoreV1Api, name: string): Promise<void> {
  await core.createNamespace({ body: { metadata: { name } } });
  await waitFor(
    () =>
      core.readNamespacedServiceAccount({ name: "default", namespace: name }).then(
        () => true,
        () => false,
      ),
    { what: `ServiceAccount "${name}/default"`, timeoutMs: 30_000 },
  );
}

/** Options of {@linkcode createMinioClass}. */
export interface MinioClassOptions {
  /** Class name (also the name of its credential Secret in lpm-system). */
  name: string;
  /** The MinIO to store into. */
  minio: MinioInfo;
  /** Key prefix in the bucket, e.g. `e2e/`. */
  prefix: string;
  /** Registry repository of the class (plain HTTP), e.g. `127.0.0.1:5000/lpm/e2e`. */
  repository: string;
  /** Tolerate an existing Secret and class (tests sharing one environment). */
  reuse?: boolean;
  /** More spec fields of the class (`retention`, `deletionPolicy`...). */
  spec?: Record<string, unknown>;
}

/**
 * Creates the credential Secret and a MinIO CheckpointStorageClass with a
 * registry, then waits until the controller reports it Available.
 */
export async function createMinioClass(
  core: k8s.CoreV1Api,
  lpm: LpmClient,
  opts: MinioClassOptions,
): Promise<void> {
  const { name, minio } = opts;
  const tolerate = (err: unknown) => {
    if (!opts.reuse) throw err;
  };
  await core.createNamespacedSecret({
    namespace: "lpm-system",
    body: {
      metadata: { name },
      stringData: { accessKeyId: minio.accessKey, secretAccessKey: minio.secretKey },
    },
  }).catch(tolerate);
  await lpm.create("checkpointstorageclasses", "", {
    apiVersion: "lpm.my.domain/v1",
    kind: "CheckpointStorageClass",
    metadata: { name },
    spec: {
      provider: "minio",
      minio: { endpoint: minio.endpoint, bucket: minio.bucket, prefix: opts.prefix },
      credentialsSecretRef: { name, namespace: "lpm-system" },
      registry: { repository: opts.repository, insecure: true },
      ...opts.spec,
    },
  }).catch(tolerate);
  await waitFor(async () => {
    const c = await lpm.get<{ status?: { phase?: string } }>("checkpointstorageclasses", "", name);
    return c?.status?.phase === "Available";
  }, { what: `CheckpointStorageClass "${name}" to be Available`, timeoutMs: 60_000 });
}
