/**
 * Compatibility checks of a PodRestore: does a stored checkpoint fit the
 * target node (CPU architecture, runtime kind, CRIU version)? Pure functions.
 * @module
 */
import type * as k8s from "@kubernetes/client-node";

/** What the checkpoint metadata (`<container>.checkpoint.json`) says, as far as the checks need. */
export interface CheckpointMetadata {
  /** Source namespace. */
  namespace?: string;
  /** Source pod name. */
  pod?: string;
  /** Container name. */
  container?: string;
  /** Source node. */
  node?: string;
  /** CPU architecture of the source node (GOARCH names), when recorded. */
  architecture?: string;
  /** The archive in the store. */
  archive?: { storageClassName?: string; key?: string; sha256?: string; size?: number };
  /** The checkpoint image pushed in the source cluster. */
  image?: { reference?: string; digest?: string };
  /** Runtime that took the checkpoint. */
  runtime?: { name?: string; version?: string; criuVersion?: string; arch?: string };
  /** The source pod (metadata + spec). */
  sourcePod?: k8s.V1Pod;
  /** Set when the stored archive is encrypted (class spec.encryption): its sha256 covers that form. */
  encryption?: { format?: string; keyId?: string; plainSize?: number; plainSha256?: string };
  /** Set when the archive is incremental against a pre-copy round (its parent is an image layer). */
  preCopy?: { parentImage?: string; parentLayers?: { digest?: string; size?: number }[] };
}

/** The architecture a checkpoint was taken on; amd64 when nothing says otherwise. */
export function checkpointArchitecture(meta: CheckpointMetadata): string {
  return meta.architecture ?? meta.runtime?.arch ?? "amd64";
}

/** The runtime kind of a node (`containerd`, `cri-o`, `docker`) or of a recorded runtime name. */
export function runtimeKind(name: string | undefined): string {
  const n = (name ?? "").toLowerCase();
  if (n.includes("cri-o") || n.includes("crio")) return "cri-o";
  if (n.includes("containerd") || n === "kubelet") return "containerd";
  if (n.includes("docker")) return "docker";
  return n.split(":")[0];
}

/**
 * Why the checkpoint cannot be restored on `node`, or undefined when it can.
 * `nodeCriuVersion` is the target's CRIU version when known (an older CRIU
 * than the one that dumped may not read the images).
 */
export function incompatibility(
  meta: CheckpointMetadata,
  node: k8s.V1Node,
  nodeCriuVersion?: string,
): string | undefined {
  const name = node.metadata?.name;
  const nodeArch = node.status?.nodeInfo?.architecture ?? "";
  const arch = checkpointArchitecture(meta);
  if (nodeArch && arch !== nodeArch) {
    return `Checkpoint was taken on architecture "${arch}" but node "${name}" is "${nodeArch}": ` +
      "CRIU cannot restore across CPU architectures";
  }
  const nodeRuntime = node.status?.nodeInfo?.containerRuntimeVersion ?? "";
  const want = runtimeKind(meta.runtime?.name);
  const have = runtimeKind(nodeRuntime);
  // The kubelet driver checkpoints through the CRI: containerd or CRI-O both restore it.
  const criKinds = ["containerd", "cri-o"];
  if (want && have && want !== have && !(criKinds.includes(want) && criKinds.includes(have))) {
    return `Checkpoint was taken by runtime "${meta.runtime?.name}" but node "${name}" runs ` +
      `"${nodeRuntime}": a ${want} checkpoint cannot be restored by ${have}`;
  }
  if (want === "docker" && have === "docker") {
    return `Node "${name}" runs Docker: pods cannot be restored there from a checkpoint`;
  }
  const dumped = meta.runtime?.criuVersion;
  if (dumped && nodeCriuVersion && compareVersions(nodeCriuVersion, dumped) < 0) {
    return `Checkpoint was dumped by CRIU ${dumped} but node "${name}" has CRIU ${nodeCriuVersion}: ` +
      "an older CRIU may not read newer images";
  }
  return undefined;
}

/** Compares dotted versions numerically ("4.1.1" vs "4.0"). */
export function compareVersions(a: string, b: string): number {
  const pa = a.replace(/^v/, "").split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.replace(/^v/, "").split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d) return Math.sign(d);
  }
  return 0;
}

/** The storage key of the metadata next to an archive key (or the key itself when it is one). */
export function metadataKey(key: string): string {
  if (key.endsWith(".checkpoint.json")) return key;
  if (key.endsWith(".tar")) return key.slice(0, -4) + ".checkpoint.json";
  throw new Error(
    `Storage key "${key}" names neither a checkpoint archive (.tar) nor its metadata (.checkpoint.json)`,
  );
}
