/**
 * One object of each kind with every field set, spec and status. The tests
 * walk them against the schemas (every TypeScript field is in the schema and
 * every schema field is in the type: `Complete<T>` makes each optional field
 * mandatory here) and apply them to a real API server. They double as a
 * reference of what each field holds.
 * @module
 */
import type {
  CheckpointStorageClass,
  Condition,
  ContainerCheckpoint,
  PodCheckpoint,
  PodMigration,
  PodRestore,
} from "./types.ts";

/** `T` with every optional field, at every depth, made mandatory. */
export type Complete<T> = T extends readonly (infer U)[] ? Complete<U>[]
  : T extends object ? { [K in keyof T]-?: Complete<T[K]> }
  : T;

/** A full object: metadata as given, spec and status complete. */
type Full<T extends { spec: unknown; status?: unknown }> = Omit<T, "spec" | "status"> & {
  spec: Complete<T["spec"]>;
  status: Complete<NonNullable<T["status"]>>;
};

const T0 = "2026-01-02T03:04:05Z";
const T1 = "2026-01-02T03:04:09Z";
const SHA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

const condition: Complete<Condition> = {
  type: "Ready",
  status: "True",
  observedGeneration: 1,
  lastTransitionTime: T0,
  reason: "Done",
  message: "All good",
};

/**
 * A storage class with every provider block set. Only valid on a server
 * after removing the blocks that do not match `spec.provider`.
 */
export const FULL_STORAGE_CLASS: Full<CheckpointStorageClass> = {
  apiVersion: "lpm.my.domain/v1",
  kind: "CheckpointStorageClass",
  metadata: { name: "full" },
  spec: {
    provider: "s3",
    default: false,
    local: { path: "/var/lib/lpm/checkpoints" },
    pvc: { claimName: "checkpoints", mountPath: "/mnt/checkpoints", subPath: "lpm" },
    s3: {
      endpoint: "https://s3.example.com",
      bucket: "checkpoints",
      region: "us-east-1",
      prefix: "cluster-a/",
      forcePathStyle: true,
      caBundle: "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n",
      insecureSkipTLSVerify: false,
    },
    minio: {
      endpoint: "http://127.0.0.1:9000",
      bucket: "checkpoints",
      region: "us-east-1",
      prefix: "cluster-a/",
      caBundle: "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n",
    },
    credentialsSecretRef: {
      name: "s3-credentials",
      namespace: "lpm-system",
      accessKeyIdKey: "accessKeyId",
      secretAccessKeyKey: "secretAccessKey",
    },
    registry: {
      repository: "registry.example.com:5000/lpm/checkpoints",
      credentialsSecretRef: { name: "registry-credentials", namespace: "lpm-system" },
      insecure: false,
      caBundle: "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n",
    },
    retention: { maxAge: "72h", maxCount: 5 },
    deletionPolicy: "Retain",
    restore: { allowedNamespaces: ["recovery"] },
    encryption: {
      secretRef: { name: "checkpoint-keys", namespace: "lpm-system" },
      keys: [{ id: "2026-11", secretKey: "key-2026-11" }, {
        id: "2026-10",
        secretKey: "key-2026-10",
      }],
    },
  },
  status: {
    phase: "Available",
    encryption: 'On (key "2026-11")',
    lastValidationTime: T0,
    message: "Bucket and registry reachable",
    conditions: [{ ...condition, type: "Available" }],
    observedGeneration: 1,
    retention: {
      lastRunTime: T0,
      nextRunTime: T1,
      checkpoints: 5,
      bytes: 5242880,
      collected: 2,
      protected: 1,
      message: "Kept 5 checkpoints (5242880 bytes); collected 2 (maxCount)",
    },
  },
};

/** A migration with every field set. */
export const FULL_POD_MIGRATION: Full<PodMigration> = {
  apiVersion: "lpm.my.domain/v1",
  kind: "PodMigration",
  metadata: { name: "full" },
  spec: {
    podName: "counter",
    targetNode: "node-b",
    storageClassName: "minio",
    sourcePodPolicy: "Keep",
    timeoutSeconds: 300,
    freezeDeadlineSeconds: 120,
    ttlSecondsAfterFinished: 3600,
    preCopy: { rounds: 2 },
    bandwidthLimit: "100Mi",
  },
  status: {
    phase: "Succeeded",
    phaseTransitionTimestamps: [
      { phase: "Pending", phaseTransitionTimestamp: T0 },
      { phase: "Succeeded", phaseTransitionTimestamp: T1 },
    ],
    conditions: [condition],
    observedGeneration: 1,
    sourceNode: "node-a",
    targetNode: "node-b",
    restoredPodName: "counter-restored",
    podCheckpointRef: { name: "full" },
    storageClassName: "minio",
    message: "Restored on node-b",
    startTime: T0,
    completionTime: T1,
    frozenAt: T0,
    restoredRunningAt: T1,
    preCopy: {
      containers: [{
        name: "app",
        operationId: "op-pc-app",
        image: `127.0.0.1:5000/lpm/checkpoints@sha256:${SHA}`,
        rounds: [{ round: 1, pages: 65536, dirtyPages: 65536, dirtyBytes: 268435456, dumpMs: 900 }],
      }],
    },
    timings: {
      preCopyMs: 4000,
      checkpointMs: 800,
      dumpMs: 500,
      uploadMs: 300,
      prePullMs: 1200,
      transferMs: 1200,
      restoreMs: 1500,
      totalMs: 4000,
      downtimeMs: 3100,
    },
  },
};

/** A pod checkpoint with every field set. */
export const FULL_POD_CHECKPOINT: Full<PodCheckpoint> = {
  apiVersion: "lpm.my.domain/v1",
  kind: "PodCheckpoint",
  metadata: { name: "full" },
  spec: {
    podName: "counter",
    storageClassName: "minio",
    containers: ["app"],
    leaveRunning: false,
    freezeDeadlineSeconds: 120,
    preCopyOperations: { app: "op-pc-app" },
  },
  status: {
    phase: "Succeeded",
    conditions: [condition],
    observedGeneration: 1,
    nodeName: "node-a",
    frozenAt: T0,
    freeze: { key: "8c1f0d7e-1b2a-4c3d-9e8f-0a1b2c3d4e5f", state: "Frozen", deadline: T1 },
    containers: [{
      name: "app",
      containerCheckpointName: "full-app",
      phase: "Succeeded",
      image: `127.0.0.1:5000/lpm/checkpoints@sha256:${SHA}`,
      volumes: {
        names: ["scratch"],
        image: `127.0.0.1:5000/lpm/checkpoints@sha256:${SHA}`,
        size: 4096,
      },
      message: "Stored",
    }],
    completionTime: T1,
    message: "1 container checkpointed",
  },
};

/** A container checkpoint with every field set. */
export const FULL_CONTAINER_CHECKPOINT: Full<ContainerCheckpoint> = {
  apiVersion: "lpm.my.domain/v1",
  kind: "ContainerCheckpoint",
  metadata: { name: "full" },
  spec: {
    podName: "counter",
    containerName: "app",
    storageClassName: "minio",
    freezeKey: "8c1f0d7e-1b2a-4c3d-9e8f-0a1b2c3d4e5f",
    preCopyOperationId: "op-pc-app",
  },
  status: {
    phase: "Succeeded",
    conditions: [condition],
    observedGeneration: 1,
    nodeName: "node-a",
    operationId: "op-1",
    progress: { phase: "upload", bytesDone: 1024, bytesTotal: 1024 },
    archive: {
      storageClassName: "minio",
      key: "default/counter/1/app.tar",
      sha256: SHA,
      size: 1024,
    },
    image: {
      reference: `127.0.0.1:5000/lpm/checkpoints@sha256:${SHA}`,
      digest: `sha256:${SHA}`,
      tag: "counter-app-1",
    },
    criuStats: {
      freezingTimeUs: 100,
      frozenTimeUs: 30000,
      memdumpTimeUs: 2000,
      memwriteTimeUs: 1500,
      pagesScanned: 4000,
      pagesSkippedParent: 0,
      pagesWritten: 300,
    },
    volumes: {
      names: ["scratch"],
      image: `127.0.0.1:5000/lpm/checkpoints@sha256:${SHA}`,
      size: 4096,
    },
    checkpointTime: T0,
    runtime: { name: "containerd", version: "2.2.9", criuVersion: "4.1.1" },
    message: "Stored",
    completionTime: T1,
  },
};

/**
 * A restore with every source set. Only valid on a server after removing
 * all but one source.
 */
export const FULL_POD_RESTORE: Full<PodRestore> = {
  apiVersion: "lpm.my.domain/v1",
  kind: "PodRestore",
  metadata: { name: "full" },
  spec: {
    source: {
      image: {
        references: [{
          containerName: "app",
          image: `127.0.0.1:5000/lpm/checkpoints@sha256:${SHA}`,
        }],
      },
      storage: { storageClassName: "minio", key: "default/counter/1/" },
      layout: { path: "/var/lib/lpm/import/counter" },
    },
    podName: "counter",
    nodeName: "node-b",
    labels: { app: "counter" },
  },
  status: {
    phase: "Succeeded",
    conditions: [condition],
    observedGeneration: 1,
    restoredPodName: "counter",
    message: "Restored",
    phaseTransitionTimestamps: [{ phase: "Succeeded", phaseTransitionTimestamp: T1 }],
  },
};

/** Each kind's full object, by kind name. */
export const FULL_OBJECTS = {
  CheckpointStorageClass: FULL_STORAGE_CLASS,
  PodMigration: FULL_POD_MIGRATION,
  PodCheckpoint: FULL_POD_CHECKPOINT,
  ContainerCheckpoint: FULL_CONTAINER_CHECKPOINT,
  PodRestore: FULL_POD_RESTORE,
} as const;
