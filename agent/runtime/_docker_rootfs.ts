/**
 * Root filesystem changes of a Docker container as CRI-O records them:
 * `rootfs-diff.tar` (added and changed paths, taken from the overlay upper
 * directory) and `deleted.files` (a JSON list), and applying both to a new
 * container before its restore.
 * @module
 */
import type Docker from "dockerode";

async function run(cmd: string, args: string[], what: string): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(
      `Cannot ${what}: ${cmd} failed: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
}

/** Docker change kinds: 0 modified, 1 added, 2 deleted. */
interface Change {
  Path: string;
  Kind: number;
}

/**
 * Writes `rootfs-diff.tar` and `deleted.files` for `container` into `dir`.
 * Returns the number of changed and deleted paths.
 */
export async function writeRootfsDiff(
  container: Docker.Container,
  info: Docker.ContainerInspectInfo,
  dir: string,
): Promise<{ changed: number; deleted: number }> {
  const changes = ((await container.changes()) ?? []) as unknown as Change[];
  const upper = (info.GraphDriver?.Data as Record<string, string> | undefined)?.UpperDir;
  const changed: string[] = [];
  const deleted: string[] = [];
  for (const c of changes) {
    if (c.Kind === 2) {
      deleted.push(c.Path);
      continue;
    }
    if (!upper) {
      throw new Error(
        `Cannot record root filesystem changes of container "${info.Name}": storage driver ` +
          `"${info.GraphDriver?.Name}" has no upper directory (overlay2 is required)`,
      );
    }
    try {
      await Deno.lstat(`${upper}${c.Path}`);
      changed.push(c.Path.replace(/^\//, ""));
    } catch {
      // Listed but not in the upper layer (a parent of a deleted path): nothing to carry.
    }
  }
  await Deno.writeTextFile(`${dir}/deleted.files`, JSON.stringify(deleted));
  const list = `${dir}/.rootfs-diff.list`;
  await Deno.writeTextFile(list, changed.map((p) => `${p}\n`).join(""));
  try {
    await run("tar", [
      "--numeric-owner",
      "--no-recursion",
      ...(upper ? ["-C", upper] : []),
      "-cf",
      `${dir}/rootfs-diff.tar`,
      "--verbatim-files-from",
      "-T",
      list,
    ], `write the root filesystem diff of container "${info.Name}"`);
  } finally {
    await Deno.remove(list).catch(() => {});
  }
  return { changed: changed.length, deleted: deleted.length };
}

/**
 * Applies a `rootfs-diff.tar` (through the Docker archive API) and the
 * deleted paths (as overlay whiteouts in the upper directory) to a created,
 * not yet started container.
 */
export async function applyRootfsDiff(
  container: Docker.Container,
  opts: { diffTar?: string; deleted: string[] },
): Promise<void> {
  if (opts.diffTar) {
    const size = (await Deno.stat(opts.diffTar)).size;
    // An empty tar is 10 KiB of zeros at most: nothing to apply.
    if (size > 10240 || await hasEntries(opts.diffTar)) {
      await container.putArchive(opts.diffTar, { path: "/" });
    }
  }
  if (opts.deleted.length) {
    const info = await container.inspect();
    const upper = (info.GraphDriver?.Data as Record<string, string> | undefined)?.UpperDir;
    if (!upper) {
      throw new Error(
        `Cannot apply deleted files to container "${info.Name}": no overlay upper directory`,
      );
    }
    for (const p of opts.deleted) {
      const target = `${upper}${p}`;
      await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
      await Deno.remove(target, { recursive: true }).catch(() => {});
      await run("mknod", [target, "c", "0", "0"], `whiteout "${p}"`);
    }
  }
}

async function hasEntries(tar: string): Promise<boolean> {
  const f = await Deno.open(tar);
  try {
    const b = new Uint8Array(512);
    const n = await f.read(b);
    return n !== null && n === 512 && b.some((x) => x !== 0);
  } finally {
    f.close();
  }
}
