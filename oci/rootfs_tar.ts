/**
 * Root filesystem layers the same way every time: GNU tar over a staging
 * directory with numeric owner root, mtime 0 and names sorted, so the same
 * files give the same tar and the same digest (the local environment's
 * workload images and lpm's own images).
 * @module
 */

/** Tars the directory `root` into `path` reproducibly (see the module doc). */
export async function reproducibleTar(root: string, path: string): Promise<void> {
  const out = await new Deno.Command("tar", {
    args: [
      "--numeric-owner",
      "--owner=0",
      "--group=0",
      "--mtime=@0",
      "--sort=name",
      "--format=gnu",
      "-C",
      root,
      "-cf",
      path,
      ".",
    ],
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`tar: ${new TextDecoder().decode(out.stderr)}`);
}
