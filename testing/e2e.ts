/**
 * The set-up the end-to-end tests share on a running environment: clients
 * of its cluster, a fresh namespace with a MinIO CheckpointStorageClass, and
 * a MinIO client for looking at what lpm stored.
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import "../kube/http1.ts";
import * as Minio from "minio";
import { LpmClient } from "../kube/lpm_client.ts";
import {
  createMinioClass,
  createNamespace,
  type EnvironmentInfo,
  type MinioClassOptions,
  type MinioInfo,
  waitFor,
} from "../localenv/mod.ts";

/** Clients of one cluster. */
export interface KubeClients {
  kc: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  apps: k8s.AppsV1Api;
  lpm: LpmClient;
}

/** Clients of the cluster `kubeconfig` points at. */
export function kubeClients(kubeconfig: string): KubeClients {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  return {
    kc,
    core: kc.makeApiClient(k8s.CoreV1Api),
    apps: kc.makeApiClient(k8s.AppsV1Api),
    lpm: new LpmClient(kc),
  };
}

/** What {@linkcode openWorkspace} makes: the namespace, and the class minus its MinIO. */
export interface WorkspaceOptions {
  /** Namespace to create. */
  ns: string;
  /** The class to create in `env`'s MinIO; `repository` is a path in `env`'s registry. */
  storageClass: Omit<MinioClassOptions, "minio">;
}

/**
 * Creates namespace `ns` and a MinIO CheckpointStorageClass (waiting until
 * it is Available) in `env`, which must run kube, MinIO and the registry.
 */
export async function openWorkspace(
  env: EnvironmentInfo,
  { ns, storageClass }: WorkspaceOptions,
): Promise<KubeClients & { ns: string }> {
  if (!env.kube || !env.minio || !env.registry) {
    throw new Error("The environment must run kube, MinIO and the registry for an e2e workspace");
  }
  const clients = kubeClients(env.kube.kubeconfig);
  await createNamespace(clients.core, ns);
  await createMinioClass(clients.core, clients.lpm, {
    ...storageClass,
    minio: env.minio,
    repository: `${env.registry.host}/${storageClass.repository}`,
  });
  return { ...clients, ns };
}

/** Deletes namespace `ns` (its pods at once, grace 0) and waits up to 2 min until it is gone. */
export async function deleteNamespaceAndWait(core: k8s.CoreV1Api, ns: string): Promise<void> {
  await core.deleteCollectionNamespacedPod({ namespace: ns, gracePeriodSeconds: 0 })
    .catch(() => {});
  await core.deleteNamespace({ name: ns }).catch(() => {});
  await waitFor(async () => {
    try {
      await core.readNamespace({ name: ns });
      return false;
    } catch {
      return true;
    }
  }, { what: `namespace "${ns}" to go`, timeoutMs: 120_000 }).catch(() => {});
}

/** A two-node test workspace: clients, its namespace, the busybox image and both nodes. */
export interface TwoNodeWorkspace {
  core: k8s.CoreV1Api;
  lpm: LpmClient;
  ns: string;
  image: string;
  nodeA: string;
  nodeB: string;
}

/**
 * {@linkcode openWorkspace} in a fresh namespace `<prefix>-<random>` with the
 * shared MinIO class `e2e-minio`, plus what two-node tests need.
 */
export async function openTwoNodeWorkspace(
  env: EnvironmentInfo,
  prefix: string,
  storageClass = "e2e-minio",
): Promise<TwoNodeWorkspace> {
  const { core, lpm, ns } = await openWorkspace(env, {
    ns: `${prefix}-${crypto.randomUUID().slice(0, 6)}`,
    storageClass: { name: storageClass, prefix: "e2e/", repository: "lpm/e2e", reuse: true },
  });
  return {
    core,
    lpm,
    ns,
    image: env.nodeImages!.busybox,
    nodeA: env.nodes![0].name,
    nodeB: env.nodes![1].name,
  };
}

/** A MinIO client (the `minio` package) of the harness MinIO. */
export function minioClient(info: MinioInfo): Minio.Client {
  const url = new URL(info.endpoint);
  return new Minio.Client({
    endPoint: url.hostname,
    port: Number(url.port),
    useSSL: false,
    accessKey: info.accessKey,
    secretKey: info.secretKey,
    region: info.region,
  });
}

/**
 * Creates a PodMigration of `pod` to `target` through `storageClassName`
 * (more spec fields in `extra`); does not wait for it.
 */
export async function createMigration(
  lpm: LpmClient,
  at: { namespace: string; name: string },
  spec: { pod: string; target: string; storageClassName: string; extra?: Record<string, unknown> },
): Promise<void> {
  await lpm.create("podmigrations", at.namespace, {
    apiVersion: "lpm.my.domain/v1",
    kind: "PodMigration",
    metadata: { name: at.name, namespace: at.namespace },
    spec: {
      podName: spec.pod,
      targetNode: spec.target,
      storageClassName: spec.storageClassName,
      ...spec.extra,
    },
  });
}
