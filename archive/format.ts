/**
 * The CRI-O / Podman checkpoint archive layout (read by `checkpointctl`):
 * file names and the JSON shapes of `config.dump`.
 * @module
 */
import type { MemberKind, MemberPolicy } from "../confine/mod.ts";

/** Entry names at the root of a checkpoint archive. */
export const ARCHIVE_FILES = {
  /** Container metadata (JSON, {@linkcode ConfigDump}). */
  config: "config.dump",
  /** OCI runtime spec of the container (JSON). */
  spec: "spec.dump",
  /** Directory of CRIU image files. */
  checkpointDir: "checkpoint",
  /** Tar of the files the container added or changed in its root filesystem. */
  rootfsDiff: "rootfs-diff.tar",
  /** JSON list of paths the container deleted from its root filesystem. */
  deletedFiles: "deleted.files",
  /** Network status of the container (JSON). */
  networkStatus: "network.status",
  /** CRIU dump statistics (CRIU image, `STATS` magic). */
  statsDump: "stats-dump",
  /** CRIU's dump log. */
  dumpLog: "dump.log",
} as const;

/**
 * `config.dump`: the fields `checkpointctl` reads (a reduced copy of
 * Podman's container config; CRI-O writes the same keys).
 */
export interface ConfigDump {
  /** Container id. */
  id: string;
  /** Container name. */
  name: string;
  /** Image id the container was created from. */
  rootfsImage?: string;
  /** Image reference (id or digest reference) the container was created from. */
  rootfsImageRef?: string;
  /** Image name the container was created from (what a restore pulls). */
  rootfsImageName?: string;
  /** OCI runtime name, e.g. `runc`. */
  runtime?: string;
  /** RFC 3339 creation time. */
  createdTime: string;
  /** RFC 3339 checkpoint time. */
  checkpointedTime?: string;
  /** RFC 3339 restore time (zero time when never restored). */
  restoredTime?: string;
  /** True once restored. */
  restored?: boolean;
}

/** A checkpoint archive that cannot be used, with the reason. */
export class CheckpointArchiveError extends Error {
  /** Creates the error for archive `path`. */
  constructor(readonly path: string, message: string) {
    super(message);
    this.name = "CheckpointArchiveError";
  }
}

/** A top-level file name of an archive: what runtimes write (`status.dump`, `container.log`, ...). */
const TOP_LEVEL_FILE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/;

/**
 * Why `name` (of kind `type`) is not part of the checkpoint archive layout,
 * or undefined: regular files at the top (any plain name, since runtimes add
 * their own, e.g. containerd's `status.dump`), and the `checkpoint/`
 * directory of CRIU images (directories and regular files). No links,
 * devices or other directories.
 */
export function checkpointLayoutProblem(name: string, type: MemberKind): string | undefined {
  const dir = ARCHIVE_FILES.checkpointDir;
  if (name === dir) return type === "dir" ? undefined : `"${dir}" must be a directory`;
  if (name.startsWith(`${dir}/`)) {
    return type === "file" || type === "dir"
      ? undefined
      : `only files and directories may be under "${dir}/"`;
  }
  if (name.includes("/")) {
    return `it is outside the checkpoint archive layout (files at the top and under "${dir}/")`;
  }
  if (type !== "file") return "top-level members must be regular files";
  if (!TOP_LEVEL_FILE.test(name)) return "it is not a plain file name";
  return undefined;
}

/** The member policy of a checkpoint archive: its fixed layout, no links, no devices. */
export function checkpointArchivePolicy(what: string): MemberPolicy {
  return {
    what,
    symlinks: "none",
    hardlinks: false,
    devices: false,
    layout: checkpointLayoutProblem,
  };
}
