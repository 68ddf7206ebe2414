/**
 * Paths from outside data, confined to a root: lexical checks (absolute,
 * `..`, NUL) and a walk that never follows a symbolic link.
 * @module
 */

/** Outside data tried to reach outside its root, or broke a size or layout rule. */
export class ConfinementError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "ConfinementError";
  }
}

/** Longest path accepted from outside data (Linux's PATH_MAX). */
const MAX_PATH = 4096;

/**
 * Why `name` cannot name something inside a root, or undefined when it can:
 * empty, NUL, absolute, a `..` segment, or longer than 4096 bytes.
 */
export function pathProblem(name: string): string | undefined {
  if (name.length === 0) return "it is empty";
  if (name.includes("\0")) return "it contains a NUL byte";
  if (name.startsWith("/")) return "it is absolute";
  if (name.length > MAX_PATH) return `it is longer than ${MAX_PATH} bytes`;
  if (name.split("/").includes("..")) return 'it contains ".."';
  return undefined;
}

/** Segments of a confined name (empty and `.` segments dropped). */
function segments(name: string): string[] {
  return name.split("/").filter((s) => s !== "" && s !== ".");
}

/**
 * Why the link `target` of a symbolic link at `linkName` (both relative to
 * the root) leaves the root, or undefined when it stays inside. Resolved
 * lexically: a relative target from the link's directory, an absolute one
 * from the root when `absolute` is `"root"` (a container root filesystem,
 * where `/bin/sh` means the container's), refused when `"refuse"`.
 */
export function linkTargetProblem(
  linkName: string,
  target: string,
  opts: { absolute: "root" | "refuse" },
): string | undefined {
  if (target.length === 0) return "its target is empty";
  if (target.includes("\0")) return "its target contains a NUL byte";
  if (target.length > MAX_PATH) return `its target is longer than ${MAX_PATH} bytes`;
  let depth: number;
  if (target.startsWith("/")) {
    if (opts.absolute === "refuse") return `its target "${target}" is absolute`;
    depth = 0;
  } else {
    depth = segments(linkName).length - 1;
  }
  for (const seg of segments(target)) {
    depth += seg === ".." ? -1 : 1;
    if (depth < 0) return `its target "${target}" points outside the root`;
  }
  return undefined;
}

/** A DNS-1123 label (a container or volume name): what may become a file name. */
export function isDnsLabel(s: unknown): s is string {
  return typeof s === "string" && s.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(s);
}

/** `Deno.lstat(path)`, or undefined when nothing is there. */
export async function lstatOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/**
 * The host path of `name` under `root`, reached without following any
 * symbolic link: every parent directory is checked with `lstat` (and
 * created with `createParents`), a link or non-directory on the way is
 * refused, and the parent's real path must lie under the root's. The last
 * segment itself is not resolved: the caller lstat()s it and may remove or
 * create it (removing a symbolic link removes the link, not its target).
 *
 * Deno has no `openat`/`O_NOFOLLOW`, so this is check-then-use: it is safe
 * where nothing else writes under `root` meanwhile (a fresh work directory,
 * or the upper directory of a created, not yet started container).
 */
export async function resolveInside(
  root: string,
  name: string,
  /** `what` names the path in messages (default `path "<name>"`). */
  opts: { createParents?: boolean; what?: string } = {},
): Promise<string> {
  const what = opts.what ?? `path "${name}"`;
  const problem = pathProblem(name);
  if (problem) throw new ConfinementError(`Refusing ${what}: ${problem}`);
  const segs = segments(name);
  if (segs.length === 0) {
    throw new ConfinementError(`Refusing ${what}: it names the root`);
  }
  let cur = root;
  for (const seg of segs.slice(0, -1)) {
    cur = `${cur}/${seg}`;
    const st = await lstatOrUndefined(cur);
    if (!st) {
      if (!opts.createParents) continue;
      await Deno.mkdir(cur, { mode: 0o755 });
      continue;
    }
    if (st.isSymlink) {
      throw new ConfinementError(
        `Refusing ${what}: "${cur.slice(root.length + 1)}" is a symbolic link ` +
          "(never followed)",
      );
    }
    if (!st.isDirectory) {
      throw new ConfinementError(
        `Refusing ${what}: "${cur.slice(root.length + 1)}" is not a directory`,
      );
    }
  }
  if (segs.length > 1 && (await lstatOrUndefined(cur))) {
    const [realRoot, realParent] = await Promise.all([Deno.realPath(root), Deno.realPath(cur)]);
    if (realParent !== realRoot && !realParent.startsWith(`${realRoot}/`)) {
      throw new ConfinementError(
        `Refusing ${what}: its directory resolves to "${realParent}", outside "${realRoot}"`,
      );
    }
  }
  return `${root}/${segs.join("/")}`;
}
