/**
 * The volume image's layout, shared by the agent that builds it and the
 * controllers that run it: a static busybox and the carried emptyDir
 * contents under one directory, copied by an init container into the
 * restored pod's emptyDirs (mounted under `mountDir/<volume>`).
 * @module
 */

/** Paths inside a volume image. */
export const VOLUME_IMAGE = {
  /** Where the carried contents sit: `<dataDir>/<volume>/...`. */
  dataDir: "/lpm-volumes",
  /** Where the init container mounts the restored pod's emptyDirs: `<mountDir>/<volume>`. */
  mountDir: "/lpm-mnt",
  /** The static busybox that copies. */
  busybox: "/lpm/busybox",
} as const;

/** Name of the init container that puts carried volume contents in place. */
export const VOLUME_INIT_CONTAINER = "lpm-restore-volumes";

/** The init container's command: copy everything, keeping owners, modes, links and times. */
export function volumeImageCommand(): string[] {
  return [
    VOLUME_IMAGE.busybox,
    "cp",
    "-a",
    `${VOLUME_IMAGE.dataDir}/.`,
    `${VOLUME_IMAGE.mountDir}/`,
  ];
}
