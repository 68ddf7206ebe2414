/**
 * Checkpoint image annotations: the keys CRI-O reads
 * (`io.kubernetes.cri-o.annotations.checkpoint.*`), the keys containerd 2.x
 * reads (checkpointctl's `org.criu.checkpoint.*`, where containerd looks for
 * `org.criu.checkpoint.container.name`), and lpm's provenance.
 * @module
 */

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
  compression: "lpm.my.domain/compression",
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
  /** sha256 hex of the archive. */
  archiveSha256: string;
  /** Layer compression. */
  compression: string;
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
    [CRIU.hostArch, "amd64"],
    [LPM.sourcePod, i.pod],
    [LPM.sourceNamespace, i.namespace],
    [LPM.sourceNode, i.node],
    [LPM.checkpointTime, i.checkpointTime],
    [LPM.archiveSha256, i.archiveSha256],
    [LPM.compression, i.compression],
    ["org.opencontainers.image.created", i.checkpointTime],
  ];
  const out: Record<string, string> = {};
  for (const [k, v] of pairs) if (v) out[k] = v;
  return out;
}
