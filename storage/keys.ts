/**
 * The checkpoint key scheme: `<namespace>/<pod>/<checkpoint-id>/<file>`.
 * Every checkpoint of a pod shares the prefix `<namespace>/<pod>/`, which is
 * what lets retention count and age checkpoints per pod. Names starting with
 * ".lpm" are reserved for the stores' own bookkeeping (temp files, blobs,
 * probes) and are never valid in a key.
 * @module
 */

/** The parts of a checkpoint key. */
export interface CheckpointKeyParts {
  /** Pod namespace. */
  namespace: string;
  /** Pod name. */
  pod: string;
  /** Checkpoint id, unique per pod (e.g. a timestamp plus a suffix). */
  checkpointId: string;
  /** File inside the checkpoint, may contain "/". */
  file: string;
}

/** Prefix reserved for the stores' internal objects. */
export const RESERVED_PREFIX = ".lpm";

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

/**
 * Returns an error message when `key` is not a valid object key (empty
 * segments, "." or "..", reserved ".lpm" names, ".meta.json" suffix, control
 * characters), or undefined when it is valid.
 */
export function keyProblem(key: string): string | undefined {
  if (key.length === 0) return "it is empty";
  if (key.length > 900) return "it is longer than 900 characters";
  if (key.startsWith("/") || key.endsWith("/")) return 'it starts or ends with "/"';
  for (const seg of key.split("/")) {
    if (!SEGMENT.test(seg)) {
      return `segment "${seg}" must start with a letter or digit and contain only ` +
        "letters, digits, '.', '_' and '-'";
    }
    if (seg.startsWith(RESERVED_PREFIX)) return `segment "${seg}" uses the reserved ".lpm" prefix`;
  }
  if (key.endsWith(".meta.json")) return 'it ends with the reserved suffix ".meta.json"';
  return undefined;
}

/** Builds the key of one file of a checkpoint. */
export function checkpointKey(parts: CheckpointKeyParts): string {
  return `${checkpointPrefix(parts)}${parts.file}`;
}

/** `<namespace>/<pod>/` : every checkpoint of one pod. */
export function podPrefix(namespace: string, pod: string): string {
  return `${namespace}/${pod}/`;
}

/** `<namespace>/<pod>/<checkpoint-id>/` : every file of one checkpoint. */
export function checkpointPrefix(
  parts: Pick<CheckpointKeyParts, "namespace" | "pod" | "checkpointId">,
): string {
  return `${podPrefix(parts.namespace, parts.pod)}${parts.checkpointId}/`;
}

/** Splits a checkpoint key into its parts, or undefined if it has fewer than four segments. */
export function parseCheckpointKey(key: string): CheckpointKeyParts | undefined {
  const segs = key.split("/");
  if (segs.length < 4 || segs.some((s) => s === "")) return undefined;
  const [namespace, pod, checkpointId, ...rest] = segs;
  return { namespace, pod, checkpointId, file: rest.join("/") };
}
