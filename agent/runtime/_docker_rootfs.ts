/**
 * Root filesystem changes of a Docker container as CRI-O records them:
 * `rootfs-diff.tar` (added and changed paths, taken from the overlay upper
 * directory) and `deleted.files` (a JSON list), and applying both to a new
 * container before its restore.
 * @module
 */
import type Docker from "dockerode";
import {
  ConfinementError,
  MemberChecker,
  type MemberPolicy,
  pathProblem,
  resolveInside,
} from "../../confine/mod.ts";
import { tarFileEntries } from "../../archive/mod.ts";

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

/** Where root filesystem changes are applied (a Docker container, or a directory in tests). */
export interface RootfsTarget {
  /** Names the target in messages, e.g. `container "x"`. */
  name: string;
  /**
   * Extracts a diff tar whose members were all checked, at the root. Docker's
   * archive API extracts inside the container's root (chrooted), so links the
   * image already has resolve inside the container.
   */
  putArchive(tarPath: string): Promise<void>;
  /** The host directory whiteouts go to (the overlay upper directory). */
  upperDir(): Promise<string>;
}

/**
 * The member policy of `rootfs-diff.tar`: paths inside the container root,
 * symbolic links that stay inside (absolute targets count from the
 * container's root), hard links to confined names, no devices or FIFOs (our
 * writer and CRI-O record deletions in `deleted.files`, not as whiteout
 * devices in the diff), and nothing written through a link the diff made.
 */
export function rootfsDiffPolicy(what: string): MemberPolicy {
  return { what, symlinks: "inside", hardlinks: true, devices: false };
}

/** Why a `deleted.files` entry cannot be applied, or undefined. */
function deletedProblem(p: unknown): string | undefined {
  if (typeof p !== "string") return "it is not a string";
  if (!p.startsWith("/")) return "it is not an absolute path in the container";
  const rel = p.replace(/^\/+/, "");
  if (rel.split("/").every((s) => s === "" || s === ".")) return "it names the root";
  return pathProblem(rel);
}

/**
 * Applies a checkpoint's root filesystem changes to `target`: every member
 * of `diffTar` and every deleted path is checked first (nothing is written
 * when one is refused), then the diff is put in place and each deleted path
 * becomes an overlay whiteout (a 0:0 character device) in the upper
 * directory. The whiteouts are made by walking the upper directory without
 * following any symbolic link (one the diff just planted included), so no
 * deleted path reaches a host file.
 */
export async function applyRootfsChanges(
  target: RootfsTarget,
  opts: { diffTar?: string; deleted: string[] },
): Promise<{ members: number; whiteouts: number }> {
  const what = `root filesystem changes for ${target.name}`;
  opts.deleted.forEach((p, i) => {
    const why = deletedProblem(p);
    if (why) {
      throw new ConfinementError(
        `Refusing ${what}: "deleted.files" entry ${i} ${JSON.stringify(p)}: ${why}`,
      );
    }
  });
  let members = 0;
  if (opts.diffTar) {
    const check = new MemberChecker(rootfsDiffPolicy(`"rootfs-diff.tar" for ${target.name}`));
    for await (const e of await tarFileEntries(opts.diffTar)) {
      if (check.check(e)) members++;
    }
    if (members > 0) await target.putArchive(opts.diffTar);
  }
  if (!opts.deleted.length) return { members, whiteouts: 0 };
  const upper = await target.upperDir();
  for (const p of opts.deleted) {
    const rel = p.replace(/^\/+/, "");
    const path = await resolveInside(upper, rel, {
      createParents: true,
      what: `deleted path "${p}" of ${target.name}`,
    });
    const st = await Deno.lstat(path).catch(() => undefined);
    // Deno.remove never follows a link: a planted link is removed, not its target.
    if (st) await Deno.remove(path, { recursive: st.isDirectory });
    await run("mknod", [path, "c", "0", "0"], `whiteout "${p}"`);
  }
  return { members, whiteouts: opts.deleted.length };
}

/**
 * Applies a `rootfs-diff.tar` (through the Docker archive API) and the
 * deleted paths (as overlay whiteouts in the upper directory) to a created,
 * not yet started container (nothing else writes its upper directory then).
 */
export async function applyRootfsDiff(
  container: Docker.Container,
  opts: { diffTar?: string; deleted: string[] },
): Promise<void> {
  let name = `container ${container.id.slice(0, 12)}`;
  await applyRootfsChanges({
    name,
    putArchive: async (tar) => {
      // An empty tar is 10 KiB of zeros at most: nothing to apply.
      if ((await Deno.stat(tar)).size > 10240 || await hasEntries(tar)) {
        await container.putArchive(tar, { path: "/" });
      }
    },
    upperDir: async () => {
      const info = await container.inspect();
      name = `container "${info.Name}"`;
      const upper = (info.GraphDriver?.Data as Record<string, string> | undefined)?.UpperDir;
      if (!upper) {
        throw new Error(`Cannot apply deleted files to ${name}: no overlay upper directory`);
      }
      return upper;
    },
  }, opts);
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
