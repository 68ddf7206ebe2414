/**
 * Checkpoint image annotations: the keys CRI-O reads
 * (`io.kubernetes.cri-o.annotations.checkpoint.*`), the keys containerd 2.x
 * reads (checkpointctl's `org.criu.checkpoint.*`, where containerd looks for
 * `org.criu.checkpoint.container.name`), and lpm's provenance.
 * @module
 */
import { hostArchitecture } from "./platform.ts";

/** CRI-O's checkpoint image annotation keys. */
export const CRIO = {
  name: "io.kubernetes.cri-o.annotations.checkpoint.name",
  rawImageName: "io.kubernetes.cri-o.annotations.checkpoint.rawImageName",
  rootfsImageID: "io.kubernetes.cri-o.annotations.checkpoint.rootfsImageID",
  rootfsImageName: "io.kubernetes.cri-o.annotations.checkpoint.rootfsImageName",
  crioVersion: "io.kubernetes.cri-o.annotations.checkpoint.cri-o.version",
  criuVersion: "io.kubernetes.cri-o.annotations.checkpoint.criu.version",
} as const;

/** checkpointctl's (and containerd's) checkpoint annotation keys. */
export const CRIU = {
  name: "org.criu.checkpoint.container.name",
  pod: "org.criu.checkpoint.pod.name",
  namespace: "org.criu.checkpoint.pod.namespace",
  rawImageName: "org.criu.checkpoint.rawImageName",
  rootfsImageID: "org.criu.checkpoint.rootfsImageID",
  rootfsImageName: "org.criu.checkpoint.rootfsImageName",
  engine: "org.criu.checkpoint.engine.name",
  engineVersion: "org.criu.checkpoint.engine.version",
  runtime: "org.criu.checkpoint.runtime.name",
  criuVersion: "org.criu.checkpoint.criu.version",
  hostArch: "org.criu.checkpoint.host.arch",
} as const;

/** lpm's provenance annotation keys. */
export const LPM = {
  sourcePod: "lpm.my.domain/source-pod",
  sourceNamespace: "lpm.my.domain/source-namespace",
  sourceNode: "lpm.my.domain/source-node",
  checkpointTime: "lpm.my.domain/checkpoint-time",
  archiveSha256: "lpm.my.domain/archive-sha256",
  /**
   * Set when the layer is the archive encrypted (`lpm-aead-v1`): then
   * archive-sha256 covers the encrypted form, as the stored object's does.
   */
  archiveEncryption: "lpm.my.domain/archive-encryption",
  compression: "lpm.my.domain/compression",
  /** JSON of the source pod (metadata and spec): what a restore needs to recreate it. */
  podSpec: "lpm.my.domain/pod-spec",
  /**
   * The agent operation that took the checkpoint. It makes every
   * checkpoint's images distinct: reproducible layers would otherwise give
   * two checkpoints of unchanged volumes one manifest digest, and deleting
   * one checkpoint's image (by digest) would delete the other's.
   */
  operation: "lpm.my.domain/operation",
} as const;

/** Inputs of {@linkcode checkpointAnnotations}. */
export interface CheckpointAnnotationInput {
  /** Container name the image restores (required by CRI-O and containerd). */
  containerName: string;
  /** Image the container ran (name as the user wrote it). */
  rootfsImageName?: string;
  /** Image id the container ran. */
  rootfsImageID?: string;
  /** Source pod. */
  pod?: string;
  /** Source namespace. */
  namespace?: string;
  /** Source node. */
  node?: string;
  /** Checkpoint time (RFC 3339). */
  checkpointTime?: string;
  /** Engine that checkpointed (`cri-o`, `containerd`, `docker`). */
  engine?: string;
  /** Its version. */
  engineVersion?: string;
  /** OCI runtime (`runc`). */
  runtime?: string;
  /** CRIU version. */
  criuVersion?: string;
  /** CPU architecture of the node that checkpointed (GOARCH name); default: this host's. */
  architecture?: string;
  /** JSON of the source pod (see {@linkcode LPM.podSpec}). */
  podSpec?: string;
  /** sha256 hex of the archive (when known before the manifest is written). */
  archiveSha256?: string;
  /** Layer compression. */
  compression?: string;
}

/** The manifest annotations of a checkpoint image (absent values are left out). */
export function checkpointAnnotations(i: CheckpointAnnotationInput): Record<string, string> {
  const pairs: [string, string | undefined][] = [
    [CRIO.name, i.containerName],
    [CRIO.rawImageName, i.rootfsImageName],
    [CRIO.rootfsImageID, i.rootfsImageID],
    [CRIO.rootfsImageName, i.rootfsImageName],
    [CRIO.crioVersion, i.engineVersion],
    [CRIO.criuVersion, i.criuVersion],
    [CRIU.name, i.containerName],
    [CRIU.pod, i.pod],
    [CRIU.namespace, i.namespace],
    [CRIU.rawImageName, i.rootfsImageName],
    [CRIU.rootfsImageID, i.rootfsImageID],
    [CRIU.rootfsImageName, i.rootfsImageName],
    [CRIU.engine, i.engine],
    [CRIU.engineVersion, i.engineVersion],
    [CRIU.runtime, i.runtime],
    [CRIU.criuVersion, i.criuVersion],
    [CRIU.hostArch, i.architecture ?? hostArchitecture()],
    [LPM.sourcePod, i.pod],
    [LPM.sourceNamespace, i.namespace],
    [LPM.sourceNode, i.node],
    [LPM.checkpointTime, i.checkpointTime],
    [LPM.archiveSha256, i.archiveSha256],
    [LPM.compression, i.compression],
    [LPM.podSpec, i.podSpec],
    ["org.opencontainers.image.created", i.checkpointTime],
  ];
  const out: Record<string, string> = {};
  for (const [k, v] of pairs) if (v) out[k] = v;
  return out;
}

/** What a checkpoint image says about itself, read back from its manifest annotations. */
export interface CheckpointImageDescription {
  /** Container the image restores. */
  containerName?: string;
  /** Source pod name. */
  pod?: string;
  /** Source namespace. */
  namespace?: string;
  /** Source node. */
  node?: string;
  /** CPU architecture of the checkpointing node (GOARCH name), when recorded. */
  architecture?: string;
  /** Engine name, version and the CRIU version that dumped. */
  runtime: { name?: string; version?: string; criuVersion?: string };
  /** sha256 hex of the archive, when recorded. */
  archiveSha256?: string;
  /** The source pod (metadata and spec), when the image carries it. */
  sourcePod?: Record<string, unknown>;
}

/**
 * Reads the checkpoint annotations of a manifest (lpm's, checkpointctl's or
 * CRI-O's, whichever is present). Throws when the pod spec annotation is not
 * a JSON object, naming the key.
 */
export function describeCheckpointImage(
  annotations: Record<string, string> | undefined,
): CheckpointImageDescription {
  const a = annotations ?? {};
  const pick = (...keys: string[]) =>
    keys.map((k) => a[k]).find((v) => v !== undefined && v !== "");
  let sourcePod: Record<string, unknown> | undefined;
  const raw = a[LPM.podSpec];
  if (raw) {
    try {
      sourcePod = JSON.parse(raw);
    } catch (err) {
      throw new Error(`Annotation "${LPM.podSpec}" is not JSON: ${(err as Error).message}`);
    }
    if (!sourcePod || typeof sourcePod !== "object" || Array.isArray(sourcePod)) {
      throw new Error(`Annotation "${LPM.podSpec}" is not a JSON object`);
    }
  }
  return {
    containerName: pick(CRIU.name, CRIO.name),
    pod: pick(LPM.sourcePod, CRIU.pod),
    namespace: pick(LPM.sourceNamespace, CRIU.namespace),
    node: pick(LPM.sourceNode),
    architecture: pick(CRIU.hostArch),
    runtime: {
      name: pick(CRIU.engine),
      version: pick(CRIU.engineVersion, CRIO.crioVersion),
      criuVersion: pick(CRIU.criuVersion, CRIO.criuVersion),
    },
    archiveSha256: pick(LPM.archiveSha256),
    sourcePod,
  };
}
