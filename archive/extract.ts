/**
 * Extracts a tar from outside into a directory, member by member, after each
 * member passed a `MemberChecker`: nothing lands outside the root, no member
 * is written through a symbolic link (the archive's or one already there),
 * files are created exclusively (never opened through an existing link),
 * setuid/setgid bits are dropped, and devices are never created. Replaces
 * GNU tar for archives lpm did not write itself.
 * @module
 */
import {
  ConfinementError,
  lstatOrUndefined,
  MemberChecker,
  type MemberPolicy,
  resolveInside,
} from "../confine/mod.ts";
import { tarEntries, type TarEntry, tarFileEntries, type TarReadOptions } from "./_tar.ts";

/** Options of {@linkcode extractTar}. */
export interface ExtractOptions extends TarReadOptions {
  /** Extract only these members (and what is under them); all when absent. */
  only?: string[];
  /**
   * Writes a regular file member itself (after it passed the policy, at
   * `path`, which does not exist): true when it did, false to have it
   * extracted as it is. It must create `path` exclusively.
   */
  writeFile?: (name: string, entry: TarEntry, path: string) => Promise<boolean>;
}

/**
 * Extracts the tar `source` (a file path or a stream) into `root` (created
 * when missing) under `policy`. Throws a {@linkcode ConfinementError} for a
 * refused member, before it is written; what was extracted before stays for
 * the caller to remove with its work directory.
 */
export async function extractTar(
  source: string | ReadableStream<Uint8Array>,
  root: string,
  policy: MemberPolicy,
  opts: ExtractOptions = {},
): Promise<{ members: number; bytes: number }> {
  await Deno.mkdir(root, { recursive: true });
  const check = new MemberChecker(policy);
  const iter: AsyncGenerator<TarEntry> = typeof source === "string"
    ? await tarFileEntries(source, opts)
    : tarEntries(source, opts);
  const wanted = (name: string) =>
    !opts.only || opts.only.some((o) => name === o || name.startsWith(`${o}/`));
  let members = 0;
  let bytes = 0;
  for await (const e of iter) {
    const name = check.check(e);
    if (!name || !wanted(name)) continue;
    const what = `member "${e.name}" of ${policy.what}`;
    const path = await resolveInside(root, name, { createParents: true, what });
    const existing = await lstatOrUndefined(path);
    if (e.type === "dir") {
      if (existing?.isDirectory) continue;
      if (existing) await Deno.remove(path);
      await Deno.mkdir(path, { mode: (e.mode & 0o777) | 0o700 });
      members++;
      continue;
    }
    if (existing) {
      if (existing.isDirectory) {
        throw new ConfinementError(
          `Refusing member "${e.name}" of ${policy.what}: a directory of that name exists`,
        );
      }
      // Removes a link itself, never its target.
      await Deno.remove(path);
    }
    switch (e.type) {
      case "file": {
        if (await opts.writeFile?.(name, e, path)) {
          members++;
          bytes += e.size;
          break;
        }
        const f = await Deno.open(path, {
          write: true,
          createNew: true,
          mode: e.mode & 0o777,
        });
        try {
          for await (const chunk of e.chunks()) {
            let off = 0;
            while (off < chunk.length) off += await f.write(chunk.subarray(off));
            bytes += chunk.length;
          }
        } finally {
          f.close();
        }
        break;
      }
      case "symlink":
        await Deno.symlink(e.linkname!, path);
        break;
      case "link": {
        const target = await resolveInside(root, e.linkname!, {
          what: `hard link target "${e.linkname}" of ${what}`,
        });
        const st = await lstatOrUndefined(target);
        if (!st?.isFile) {
          throw new ConfinementError(
            `Refusing member "${e.name}" of ${policy.what}: hard link target "${e.linkname}" ` +
              "is not a regular file extracted before it",
          );
        }
        await Deno.link(target, path);
        break;
      }
      default:
        throw new ConfinementError(
          `Refusing member "${e.name}" of ${policy.what}: ${e.type} members are never extracted`,
        );
    }
    members++;
  }
  return { members, bytes };
}
