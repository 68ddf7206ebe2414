/**
 * Workload images without any registry to pull from: a root filesystem made
 * from Debian's busybox-static, as a tar stream for `docker import` or for
 * the project's own OCI writer.
 * @module
 */
import { reproducibleTar } from "../oci/rootfs_tar.ts";

/** Tars a directory reproducibly (moved down to `oci/`, where lpm's own images use it too). */
export { reproducibleTar };

/** Applets linked in the rootfs (each a symlink to /bin/busybox). */
const APPLETS = [
  "sh",
  "sleep",
  "echo",
  "cat",
  "ls",
  "date",
  "seq",
  "wc",
  "ps",
  "mkdir",
  "rm",
  "true",
  "tail",
];

/**
 * Writes a busybox rootfs tar (uncompressed) to `path` and returns it.
 * Built with GNU tar from a staging dir so ownership and modes are normal.
 */
export async function buildBusyboxRootfsTar(path: string): Promise<string> {
  const staging = await Deno.makeTempDir({ prefix: "lpm-rootfs-" });
  try {
    for (const d of ["bin", "tmp", "proc", "sys", "dev", "etc", "var/log"]) {
      await Deno.mkdir(`${staging}/${d}`, { recursive: true });
    }
    await Deno.chmod(`${staging}/tmp`, 0o1777);
    await Deno.copyFile("/bin/busybox", `${staging}/bin/busybox`);
    await Deno.chmod(`${staging}/bin/busybox`, 0o755);
    for (const a of APPLETS) await Deno.symlink("busybox", `${staging}/bin/${a}`);
    await Deno.writeTextFile(`${staging}/etc/passwd`, "root:x:0:0:root:/:/bin/sh\n");
    await Deno.writeTextFile(`${staging}/etc/group`, "root:x:0:\n");
    await reproducibleTar(staging, path).catch((err) => {
      throw new Error(`Cannot build the busybox rootfs: ${(err as Error).message}`);
    });
    return path;
  } finally {
    await Deno.remove(staging, { recursive: true });
  }
}

/** The shell loop of the counter workload: prints 1, 2, 3... one per `intervalS`. */
export function counterScript(intervalS = 0.2): string {
  return `i=0; while true; do i=$((i+1)); echo $i; sleep ${intervalS}; done`;
}
