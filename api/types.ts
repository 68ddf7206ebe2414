/**
 * The lpm.my.domain/v1 API: TypeScript types of every kind. The CRD schemas
 * in `crds/` are generated from `api/schema/` (`deno task gen:crds`); tests keep
 * the two from drifting.
 * @module
 */
import type { V1ObjectMeta } from "@kubernetes/client-node";

/** API group of every lpm kind. */
export const GROUP = "lpm.my.domain";
/** Served and stored version. */
export const VERSION = "v1";
/** `apiVersion` of every lpm object. */
export const API_VERSION = `${GROUP}/${VERSION}` as const;

/**
 * Pod annotation that opts a pod in to live migration on eviction (value
 * {@linkcode LIVE_MIGRATE}): `kubectl drain` and the Eviction API move it
 * instead of killing it (controllers/eviction.ts, cli/drain.ts).
 */
export const EVICTION_STRATEGY_ANNOTATION = `${GROUP}/eviction-strategy`;
/** The value of {@linkcode EVICTION_STRATEGY_ANNOTATION} that opts in. */
export const LIVE_MIGRATE = "LiveMigrate";
/** Pod annotation naming the CheckpointStorageClass of its eviction migrations (else the default). */
export const EVICTION_STORAGE_CLASS_ANNOTATION = `${GROUP}/storage-class`;

/** Object metadata: metav1.ObjectMeta as @kubernetes/client-node types it. */
export type ObjectMeta = V1ObjectMeta;

/** metav1.Condition. */
export interface Condition {
  /** CamelCase type, e.g. "Ready". */
  type: string;
  status: "True" | "False" | "Unknown";
  observedGeneration?: number;
  /** RFC 3339. */
  lastTransitionTime: string;
  /** CamelCase reason. */
  reason: string;
  message: string;
}

/** A reference to a Secret in a namespace. */
export interface SecretRef {
  name: string;
  namespace: string;
}

/** Storage providers. */
export const PROVIDERS = ["local", "pvc", "s3", "minio"] as const;
/** A storage provider name. */
export type Provider = typeof PROVIDERS[number];

/** CheckpointStorageClass.spec. */
export interface CheckpointStorageClassSpec {
  provider: Provider;
  /** The class used when a migration or checkpoint names none. At most one. */
  default?: boolean;
  local?: { path: string };
  pvc?: { claimName: string; mountPath: string; subPath?: string };
  s3?: {
    endpoint?: string;
    bucket: string;
    region?: string;
    prefix?: string;
    forcePathStyle?: boolean;
    /** PEM bundle of CAs for the endpoint. */
    caBundle?: string;
    insecureSkipTLSVerify?: boolean;
  };
  minio?: { endpoint: string; bucket: string; region?: string; prefix?: string; caBundle?: string };
  credentialsSecretRef?: SecretRef & { accessKeyIdKey?: string; secretAccessKeyKey?: string };
  registry?: {
    /** host[:port]/path, where checkpoint images are pushed. */
    repository: string;
    /** A kubernetes.io/dockerconfigjson Secret. */
    credentialsSecretRef?: SecretRef;
    /** Plain HTTP (loopback/dev registries only). */
    insecure?: boolean;
    caBundle?: string;
  };
  retention?: {
    /** Go duration, e.g. "72h". */
    maxAge?: string;
    /** Checkpoints kept per pod. */
    maxCount?: number;
  };
  /**
   * What happens to a checkpoint's stored archives and images when its
   * PodCheckpoint (or standalone ContainerCheckpoint) is deleted: `Delete`
   * (default) removes them, `Retain` keeps them.
   */
  deletionPolicy?: "Delete" | "Retain";
  /** Who may restore checkpoints of this class (PodRestore). */
  restore?: {
    /**
     * Namespaces that may restore a checkpoint taken in another namespace
     * ("*": any). By default a checkpoint restores only into the namespace
     * it was taken in.
     */
    allowedNamespaces?: string[];
  };
  /** Encryption of the class's archives and checkpoint images (absent: stored in plain). */
  encryption?: EncryptionSpec;
}

/** CheckpointStorageClass.spec.encryption: the keys, in a Secret, that encrypt checkpoints. */
export interface EncryptionSpec {
  /** Secret (in the agents' namespace) holding each key as 32 bytes, base64 or hex text. */
  secretRef: SecretRef;
  /**
   * The keys, newest first: the first encrypts new checkpoints, every listed
   * key decrypts (rotation: add the new key first, drop the old one when no
   * checkpoint needs it).
   */
  keys: { id: string; secretKey?: string }[];
}

/** Phases of a storage class. */
export const STORAGE_CLASS_PHASES = ["Available", "Unavailable"] as const;

/** CheckpointStorageClass.status. */
export interface CheckpointStorageClassStatus {
  phase?: typeof STORAGE_CLASS_PHASES[number];
  lastValidationTime?: string;
  message?: string;
  conditions?: Condition[];
  observedGeneration?: number;
  /** What the last retention pass found and did. */
  retention?: RetentionStatus;
  /** "On" (with the key that encrypts) or "Off", as the last validation found it. */
  encryption?: string;
}

/** CheckpointStorageClass.status.retention: the last retention pass. */
export interface RetentionStatus {
  /** When the last pass ended. */
  lastRunTime?: string;
  /** When the next periodic pass is due. */
  nextRunTime?: string;
  /** Checkpoints the store holds after the pass. */
  checkpoints?: number;
  /** Bytes the store holds after the pass (archives and metadata). */
  bytes?: number;
  /** Checkpoints the pass removed. */
  collected?: number;
  /** Checkpoints the pass would have removed but kept: a migration or restore needs them. */
  protected?: number;
  /** What the pass did, or why it could not run. */
  message?: string;
}

/** Cluster-scoped: where and how checkpoints are stored. */
export interface CheckpointStorageClass {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec: CheckpointStorageClassSpec;
  status?: CheckpointStorageClassStatus;
}

/** Phases of a PodMigration. */
export const MIGRATION_PHASES = [
  "Pending",
  "PreCopying",
  "Checkpointing",
  "Transferring",
  "Restoring",
  "Succeeded",
  "Failed",
] as const;
/** A PodMigration phase. */
export type MigrationPhase = typeof MIGRATION_PHASES[number];

/** A phase and when it was entered. */
export interface PhaseTransition {
  phase: string;
  phaseTransitionTimestamp: string;
}

/** PodMigration.spec. */
export interface PodMigrationSpec {
  podName: string;
  /** The node to move to; unset, the controller chooses one (status.targetNode). */
  targetNode?: string;
  storageClassName?: string;
  /** What happens to the source pod once the restored pod runs. Default Delete. */
  sourcePodPolicy?: "Delete" | "Keep";
  /** Give up after this long. Default 600. */
  timeoutSeconds?: number;
  /**
   * The source's agent thaws the frozen source by itself when the migration
   * has not renewed this deadline for this many seconds (controller gone,
   * agent restarted...). Default 120.
   */
  freezeDeadlineSeconds?: number;
  /**
   * Deleted this many seconds after it finished (Succeeded or Failed), with
   * its PodCheckpoint; the restored pod stays. Unset: kept until deleted.
   */
  ttlSecondsAfterFinished?: number;
  /**
   * Pre-copy (docs/pre-copy.md): up to `rounds` full dumps while the source
   * runs, the last one pulled on the target before the freeze; the final
   * checkpoint then carries only the pages dirtied since. 0 or unset: off.
   */
  preCopy?: { rounds?: number };
  /** Reserved: transfer bandwidth limit (quantity, e.g. "100Mi"). */
  bandwidthLimit?: string;
}

/** One pre-copy round of a container, as the source's agent reported it. */
export interface PreCopyRoundStatus {
  round: number;
  /** Pages in the round's dump. */
  pages: number;
  /** Pages changed since the round before (round 1: all). */
  dirtyPages: number;
  /** Bytes of those pages. */
  dirtyBytes: number;
  /** How long the round's dump took: the source was stopped for at most this long. */
  dumpMs: number;
}

/** PodMigration.status. */
export interface PodMigrationStatus {
  phase?: MigrationPhase;
  phaseTransitionTimestamps?: PhaseTransition[];
  conditions?: Condition[];
  observedGeneration?: number;
  sourceNode?: string;
  /** The node the pod moves to: spec.targetNode, or the one the controller chose. */
  targetNode?: string;
  restoredPodName?: string;
  podCheckpointRef?: { name: string };
  storageClassName?: string;
  message?: string;
  startTime?: string;
  completionTime?: string;
  /** When the source was frozen (its last instruction ran before this). */
  frozenAt?: string;
  /** When the restored pod's last container started running. */
  restoredRunningAt?: string;
  /** With spec.preCopy: each container's rounds and its parent image. */
  preCopy?: {
    containers: {
      name: string;
      /** The source agent's pre-copy operation. */
      operationId: string;
      /** The parent-only image (the last round), pulled on the target before the freeze. */
      image?: string;
      rounds?: PreCopyRoundStatus[];
    }[];
  };
  timings?: {
    /** The PreCopying phase: rounds and the target's pull of the parent images. */
    preCopyMs?: number;
    /** The Checkpointing phase: freeze, dump and upload of every container. */
    checkpointMs?: number;
    /** From the freeze until every container's archive was written on the node. */
    dumpMs?: number;
    /** From the archives on the node until stored and pushed (the slowest container). */
    uploadMs?: number;
    /** The Transferring phase: the target node pulled the checkpoint images. */
    prePullMs?: number;
    /** Same as prePullMs (kept for existing readers). */
    transferMs?: number;
    /** From creating the restored pod until its last container ran. */
    restoreMs?: number;
    /** From start to completion. */
    totalMs?: number;
    /** From the freeze of the source until the restored pod's last container ran. */
    downtimeMs?: number;
  };
}

/** Namespaced: move a running pod to another node. */
export interface PodMigration {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec: PodMigrationSpec;
  status?: PodMigrationStatus;
}

/** Phases of checkpoints. */
export const CHECKPOINT_PHASES = ["Pending", "Running", "Succeeded", "Failed"] as const;
/** A checkpoint phase. */
export type CheckpointPhase = typeof CHECKPOINT_PHASES[number];

/** PodCheckpoint.spec. */
export interface PodCheckpointSpec {
  podName: string;
  storageClassName?: string;
  /** Containers to checkpoint; default all. */
  containers?: string[];
  /**
   * Leave the pod running (default true): the runtime dumps each container
   * and lets it go on. False: the whole pod is frozen before any container is
   * dumped and never runs again; a PodMigration then hands over or thaws it,
   * a PodCheckpoint of its own stops it (the pod is deleted).
   */
  leaveRunning?: boolean;
  /** With leaveRunning false: seconds after which the agent thaws the pod if nobody renews it. Default 120. */
  freezeDeadlineSeconds?: number;
  /** Set by a PodMigration with spec.preCopy: container name -> the source agent's pre-copy operation. */
  preCopyOperations?: Record<string, string>;
}

/** PodCheckpoint.status. */
export interface PodCheckpointStatus {
  phase?: CheckpointPhase;
  conditions?: Condition[];
  observedGeneration?: number;
  nodeName?: string;
  /** With leaveRunning false: when every container of the pod was frozen. */
  frozenAt?: string;
  /** With leaveRunning false: what became of the frozen pod. */
  freeze?: {
    /** The agent's key of the freeze (the PodCheckpoint's uid). */
    key: string;
    /** Frozen; Thawed (it went on); Stopped (killed, after a hand-over or by its own PodCheckpoint). */
    state: "Frozen" | "Thawed" | "Stopped";
    /** When the agent thaws it unless renewed. */
    deadline?: string;
  };
  containers?: {
    name: string;
    containerCheckpointName: string;
    phase?: string;
    image?: string;
    /** The emptyDir volumes this container's checkpoint carries. */
    volumes?: CarriedVolumes;
    message?: string;
  }[];
  completionTime?: string;
  message?: string;
}

/** Namespaced: checkpoint every (or some) container of a pod. */
export interface PodCheckpoint {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec: PodCheckpointSpec;
  status?: PodCheckpointStatus;
}

/** ContainerCheckpoint.spec. */
export interface ContainerCheckpointSpec {
  podName: string;
  containerName: string;
  storageClassName?: string;
  /**
   * Set by a PodCheckpoint with leaveRunning false: the key of the freeze
   * its agent holds; the container is dumped frozen and stays frozen.
   */
  freezeKey?: string;
  /** Set by a PodCheckpoint with spec.preCopyOperations: the archive is incremental against it. */
  preCopyOperationId?: string;
}

/** CRIU statistics from stats-dump. */
export interface CriuStats {
  freezingTimeUs?: number;
  frozenTimeUs?: number;
  memdumpTimeUs?: number;
  memwriteTimeUs?: number;
  pagesScanned?: number;
  pagesSkippedParent?: number;
  pagesWritten?: number;
}

/**
 * emptyDir volumes carried with a checkpoint: their contents, taken on the
 * source node right after the dump, in an OCI image that a restored pod's
 * init container copies into the new pod's emptyDirs before its containers
 * are restored.
 */
export interface CarriedVolumes {
  /** Names of the pod's emptyDir volumes in the image. */
  names: string[];
  /** The image, by digest. */
  image: string;
  /** Bytes of volume data. */
  size: number;
}

/** ContainerCheckpoint.status. */
export interface ContainerCheckpointStatus {
  phase?: CheckpointPhase;
  conditions?: Condition[];
  observedGeneration?: number;
  nodeName?: string;
  operationId?: string;
  progress?: { phase?: string; bytesDone?: number; bytesTotal?: number };
  archive?: { storageClassName: string; key: string; sha256: string; size: number };
  image?: { reference: string; digest: string; tag?: string };
  criuStats?: CriuStats;
  /** emptyDir volumes carried with this container's checkpoint. */
  volumes?: CarriedVolumes;
  checkpointTime?: string;
  runtime?: { name: string; version?: string; criuVersion?: string };
  message?: string;
  completionTime?: string;
}

/** Namespaced: checkpoint one container. */
export interface ContainerCheckpoint {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec: ContainerCheckpointSpec;
  status?: ContainerCheckpointStatus;
}

/** Phases of a PodRestore. */
export const RESTORE_PHASES = ["Pending", "Importing", "Restoring", "Succeeded", "Failed"] as const;

/** PodRestore.spec: exactly one source. */
export interface PodRestoreSpec {
  source: {
    image?: { references: { containerName: string; image: string }[] };
    storage?: { storageClassName: string; key: string };
    layout?: { path: string };
  };
  podName?: string;
  nodeName?: string;
  labels?: Record<string, string>;
}

/** PodRestore.status. */
export interface PodRestoreStatus {
  phase?: typeof RESTORE_PHASES[number];
  conditions?: Condition[];
  observedGeneration?: number;
  restoredPodName?: string;
  message?: string;
  phaseTransitionTimestamps?: PhaseTransition[];
}

/** Namespaced: restore a stored checkpoint as a pod in this cluster. */
export interface PodRestore {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec: PodRestoreSpec;
  status?: PodRestoreStatus;
}

/** Kind, plural and scope of each lpm resource. */
export const KINDS = {
  CheckpointStorageClass: {
    kind: "CheckpointStorageClass",
    plural: "checkpointstorageclasses",
    namespaced: false,
  },
  PodMigration: { kind: "PodMigration", plural: "podmigrations", namespaced: true },
  PodCheckpoint: { kind: "PodCheckpoint", plural: "podcheckpoints", namespaced: true },
  ContainerCheckpoint: {
    kind: "ContainerCheckpoint",
    plural: "containercheckpoints",
    namespaced: true,
  },
  PodRestore: { kind: "PodRestore", plural: "podrestores", namespaced: true },
} as const;
