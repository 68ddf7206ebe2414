/**
 * The filesystem store behind `local` and `pvc`.
 *
 * Layout under the root: the object's bytes at `<root>/<key>` and a sidecar
 * `<root>/<key>.meta.json` holding sha256, size, metadata and publish time.
 * An object exists only when both files exist. A put writes both to
 * `.lpm-tmp-*` files in the target directory, fsyncs them, then removes the
 * old sidecar, renames the data, renames the sidecar (the commit point) and
 * fsyncs the directory. A crash leaves only `.lpm-tmp-*` files or data
 * without a sidecar: neither lists, and {@linkcode FsStore.cleanDebris}
 * removes them after a grace period.
 * @module
 */
import type {
  CheckpointStore,
  GetOptions,
  ListOptions,
  ObjectInfo,
  PutOptions,
} from "./backend.ts";
import { describeCause, StorageError, type StorageErrorCode } from "./errors.ts";
import { keyProblem } from "./keys.ts";
import { isSha256Hex } from "../base/sha256.ts";
import { hashFile, verifiedFileStream, writeAll, writeHashed } from "./_fs_io.ts";

const META_SUFFIX = ".meta.json";
const TMP_PREFIX = ".lpm-tmp-";

interface Sidecar {
  version: 1;
  sha256: string;
  size: number;
  metadata: Record<string, string>;
  publishedAt: string;
}

/** Options for {@linkcode FsStore}. */
export interface FsStoreOptions {
  /** Provider name reported in info and errors. */
  provider: string;
  /** Root directory (absolute). */
  root: string;
  /** Human-readable location; defaults to the root. */
  location?: string;
  /** A directory that must already exist (a volume's mount point); the root is created under it. */
  requiredDir?: string;
}

/** A {@linkcode CheckpointStore} on a directory. */
export class FsStore implements CheckpointStore {
  /** Provider name. */
  readonly provider: string;
  /** Human-readable location. */
  readonly location: string;
  /** Root directory. */
  readonly root: string;
  readonly #requiredDir?: string;
  #rootChecked = false;

  /** Builds the store; touches nothing until the first call. */
  constructor(opts: FsStoreOptions) {
    this.provider = opts.provider;
    this.root = opts.root.replace(/\/+$/, "") || "/";
    this.location = opts.location ?? this.root;
    this.#requiredDir = opts.requiredDir;
  }

  /** Absolute path of the data file of `key`. */
  pathOf(key: string): string {
    this.#checkKey(key);
    return `${this.root}/${key}`;
  }

  async put(
    key: string,
    body: ReadableStream<Uint8Array>,
    opts: PutOptions = {},
  ): Promise<ObjectInfo> {
    const path = this.pathOf(key);
    if (opts.sha256 !== undefined && !isSha256Hex(opts.sha256)) {
      await body.cancel().catch(() => {});
      throw this.#error(
        "InvalidKey",
        `Cannot store "${key}": expected sha256 "${opts.sha256}" is not 64 lowercase hex digits`,
        key,
      );
    }
    const reader = body.getReader();
    const dir = path.slice(0, path.lastIndexOf("/"));
    const id = crypto.randomUUID();
    const tmpData = `${dir}/${TMP_PREFIX}${id}.data`;
    const tmpMeta = `${dir}/${TMP_PREFIX}${id}.meta`;
    let file: Deno.FsFile | undefined;
    try {
      await this.#ensureRoot();
      // A concurrent delete may prune the directory between mkdir and open: try twice.
      for (let attempt = 0; !file; attempt++) {
        await Deno.mkdir(dir, { recursive: true }).catch((e) => {
          throw this.#fsError(e, `create directory "${dir}" for "${key}"`, key);
        });
        file = await Deno.open(tmpData, { write: true, createNew: true, mode: 0o600 }).catch(
          (e) => {
            if (e instanceof Deno.errors.NotFound && attempt === 0) return undefined;
            throw this.#fsError(e, `create "${tmpData}" for "${key}"`, key);
          },
        );
      }
      const hash = await writeHashed(file, reader, {
        signal: opts.signal,
        abortError: () => this.#aborted(key, opts.signal!),
        writeError: (e) => this.#fsError(e, `write "${tmpData}" for "${key}"`, key),
        onProgress: opts.onProgress,
      });
      if (opts.signal?.aborted) throw this.#aborted(key, opts.signal);
      const sha256 = hash.hex();
      this.#checkExpected(key, opts, sha256, hash.size);
      await file.sync().catch((e) => {
        throw this.#fsError(e, `fsync "${tmpData}"`, key);
      });
      file.close();
      file = undefined;
      const sidecar = await this.#publish(key, tmpData, tmpMeta, sha256, hash.size, opts);
      return infoOf(key, sidecar);
    } catch (err) {
      await reader.cancel(err).catch(() => {});
      throw err;
    } finally {
      reader.releaseLock();
      try {
        file?.close();
      } catch { /* already closed */ }
      await removeIfExists(tmpData).catch(() => {});
      await removeIfExists(tmpMeta).catch(() => {});
    }
  }

  /**
   * Publishes a synced temp data file as `key`: writes the sidecar to
   * `tmpMeta`, unpublishes the old version, renames data then sidecar (the
   * commit point) and syncs the directory.
   */
  async #publish(
    key: string,
    tmpData: string,
    tmpMeta: string,
    sha256: string,
    size: number,
    opts: PutOptions,
  ): Promise<Sidecar> {
    const path = this.pathOf(key);
    const dir = path.slice(0, path.lastIndexOf("/"));
    const sidecar: Sidecar = {
      version: 1,
      sha256,
      size,
      metadata: { ...opts.metadata },
      publishedAt: new Date().toISOString(),
    };
    await writeFileSynced(tmpMeta, JSON.stringify(sidecar)).catch((e) => {
      throw this.#fsError(e, `write "${tmpMeta}"`, key);
    });
    // Unpublish the old version first so no reader pairs new bytes with an old sidecar.
    await removeIfExists(path + META_SUFFIX).catch((e) => {
      throw this.#fsError(e, `replace "${path}${META_SUFFIX}"`, key);
    });
    await Deno.rename(tmpData, path).catch((e) => {
      throw this.#fsError(e, `rename "${tmpData}" to "${path}"`, key);
    });
    await Deno.rename(tmpMeta, path + META_SUFFIX).catch((e) => {
      throw this.#fsError(e, `rename "${tmpMeta}" to "${path}${META_SUFFIX}"`, key);
    });
    await syncDir(dir);
    return sidecar;
  }

  /**
   * Stores the file at `source` as `key`: the kernel copies the bytes
   * (copy_file_range) into a temp file while this process reads the source
   * and hashes it, then the temp file is synced and published like
   * {@linkcode put}. The source must not change while it is stored (a
   * checkpoint archive does not); a reader would see the mismatch anyway.
   */
  async putFile(key: string, source: string, opts: PutOptions = {}): Promise<ObjectInfo> {
    const path = this.pathOf(key);
    if (opts.sha256 !== undefined && !isSha256Hex(opts.sha256)) {
      throw this.#error(
        "InvalidKey",
        `Cannot store "${key}": expected sha256 "${opts.sha256}" is not 64 lowercase hex digits`,
        key,
      );
    }
    const dir = path.slice(0, path.lastIndexOf("/"));
    const id = crypto.randomUUID();
    const tmpData = `${dir}/${TMP_PREFIX}${id}.data`;
    const tmpMeta = `${dir}/${TMP_PREFIX}${id}.meta`;
    try {
      await this.#ensureRoot();
      await Deno.mkdir(dir, { recursive: true }).catch((e) => {
        throw this.#fsError(e, `create directory "${dir}" for "${key}"`, key);
      });
      const [hash] = await Promise.all([
        hashFile(source, {
          signal: opts.signal,
          onProgress: opts.onProgress,
          readError: (e) => this.#fsError(e, `read "${source}" for "${key}"`, key),
        }),
        // Copy and flush to disk while the hash runs: durability costs no extra time.
        Deno.copyFile(source, tmpData).catch((e) => {
          throw this.#fsError(e, `copy "${source}" to "${tmpData}" for "${key}"`, key);
        }).then(() => syncFile(tmpData)).catch((e) => {
          throw e instanceof StorageError ? e : this.#fsError(e, `fsync "${tmpData}"`, key);
        }),
      ]);
      if (opts.signal?.aborted) throw this.#aborted(key, opts.signal);
      const copied = (await Deno.stat(tmpData)).size;
      if (copied !== hash.size) {
        throw this.#error(
          "SizeMismatch",
          `Cannot store "${key}": "${source}" changed while it was copied (${hash.size} bytes ` +
            `hashed, ${copied} copied); nothing was published`,
          key,
        );
      }
      const sha256 = hash.hex();
      this.#checkExpected(key, opts, sha256, hash.size);
      await Deno.chmod(tmpData, 0o600).catch(() => {});
      return infoOf(key, await this.#publish(key, tmpData, tmpMeta, sha256, hash.size, opts));
    } finally {
      await removeIfExists(tmpData).catch(() => {});
      await removeIfExists(tmpMeta).catch(() => {});
    }
  }

  /**
   * Copies the object into the file `dest` (replaced), verified: the kernel
   * copies the bytes to a temp file beside `dest` while this process hashes
   * the stored data; `dest` appears (renamed, synced) only when the digest and
   * size match the stored ones. On a mismatch nothing is left at `dest` and
   * the error is the same `DigestMismatch` as {@linkcode get}'s.
   */
  async getToFile(key: string, dest: string, opts: GetOptions = {}): Promise<ObjectInfo> {
    const path = this.pathOf(key);
    const sidecar = await this.#readSidecar(key);
    if (!sidecar) throw this.#notFound(key);
    const tmp = `${dest}.lpm-tmp-${crypto.randomUUID()}`;
    try {
      const [hash] = await Promise.all([
        hashFile(path, {
          signal: opts.signal,
          readError: (e) => this.#fsError(e, `read "${path}"`, key),
        }),
        Deno.copyFile(path, tmp).then(() => syncFile(tmp)).catch((e) => {
          throw this.#fsError(e, `copy "${path}" to "${tmp}"`, key);
        }),
      ]);
      if (opts.signal?.aborted) throw this.#aborted(key, opts.signal);
      const actual = { sha256: hash.hex(), size: hash.size };
      const copied = (await Deno.stat(tmp)).size;
      if (
        actual.sha256 !== sidecar.sha256 || actual.size !== sidecar.size || copied !== actual.size
      ) {
        throw this.#corrupt(key, sidecar, actual);
      }
      await Deno.rename(tmp, dest);
      return infoOf(key, sidecar);
    } finally {
      await removeIfExists(tmp).catch(() => {});
    }
  }

  #corrupt(key: string, sidecar: Sidecar, actual: { sha256: string; size: number }): StorageError {
    return this.#error(
      "DigestMismatch",
      `Object "${key}" at "${this.location}" is corrupt: stored sha256 "${sidecar.sha256}" ` +
        `(${sidecar.size} bytes) but the data reads as sha256 "${actual.sha256}" (${actual.size} bytes)`,
      key,
    );
  }

  #checkExpected(key: string, opts: PutOptions, sha256: string, size: number): void {
    if (opts.size !== undefined && opts.size !== size) {
      throw this.#error(
        "SizeMismatch",
        `Cannot store "${key}" at "${this.location}": received ${size} bytes, expected ${opts.size}; nothing was published`,
        key,
      );
    }
    if (opts.sha256 !== undefined && opts.sha256 !== sha256) {
      throw this.#error(
        "DigestMismatch",
        `Cannot store "${key}" at "${this.location}": content sha256 "${sha256}" differs from the expected "${opts.sha256}"; nothing was published`,
        key,
      );
    }
  }

  async get(key: string, opts: GetOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const path = this.pathOf(key);
    const sidecar = await this.#readSidecar(key);
    if (!sidecar) throw this.#notFound(key);
    const file = await Deno.open(path, { read: true }).catch((e) => {
      throw this.#fsError(e, `open "${path}"`, key);
    });
    return verifiedFileStream(file, {
      expected: sidecar,
      readError: (e) => this.#fsError(e, `read "${path}"`, key),
      signal: opts.signal,
      mismatch: (actual) => this.#corrupt(key, sidecar, actual),
    });
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    this.pathOf(key);
    const sidecar = await this.#readSidecar(key);
    if (!sidecar) return undefined;
    const data = await statOrUndefined(`${this.root}/${key}`);
    return data?.isFile ? infoOf(key, sidecar) : undefined;
  }

  async *list(prefix: string, opts: ListOptions = {}): AsyncIterable<ObjectInfo> {
    await this.#ensureRoot();
    // Walk from the deepest directory the prefix names; filter the rest by string.
    const slash = prefix.lastIndexOf("/");
    const start = slash < 0 ? "" : prefix.slice(0, slash);
    const keys: string[] = [];
    await this.#walk(start, (rel, name) => {
      if (name.endsWith(META_SUFFIX) && !name.startsWith(TMP_PREFIX)) {
        const key = rel.slice(0, -META_SUFFIX.length);
        if (key.startsWith(prefix) && keyProblem(key) === undefined) keys.push(key);
      }
    }, opts.signal);
    keys.sort();
    for (const key of keys) {
      const info = await this.stat(key);
      if (info) yield info;
    }
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    await removeIfExists(path + META_SUFFIX).catch((e) => {
      throw this.#fsError(e, `remove "${path}${META_SUFFIX}"`, key);
    });
    await removeIfExists(path).catch((e) => {
      throw this.#fsError(e, `remove "${path}"`, key);
    });
    // Prune directories the key leaves empty (rmdir fails harmlessly on non-empty ones).
    let dir = path.slice(0, path.lastIndexOf("/"));
    while (dir.length > this.root.length) {
      try {
        await Deno.remove(dir);
      } catch {
        break;
      }
      dir = dir.slice(0, dir.lastIndexOf("/"));
    }
  }

  async cleanDebris(opts: { graceMs: number; signal?: AbortSignal }): Promise<number> {
    const cutoff = Date.now() - opts.graceMs;
    const old = async (path: string) => {
      const st = await statOrUndefined(path);
      return st !== undefined && (st.mtime?.getTime() ?? 0) < cutoff;
    };
    const files: string[] = [];
    const present = new Set<string>();
    await this.#walk("", (rel) => {
      files.push(rel);
      present.add(rel);
    }, opts.signal);
    let removed = 0;
    for (const rel of files) {
      const name = rel.slice(rel.lastIndexOf("/") + 1);
      const path = `${this.root}/${rel}`;
      let debris = false;
      if (name.startsWith(TMP_PREFIX)) debris = true;
      else if (name.endsWith(META_SUFFIX)) debris = !present.has(rel.slice(0, -META_SUFFIX.length));
      else debris = !present.has(rel + META_SUFFIX);
      if (debris && await old(path)) {
        await removeIfExists(path).catch((e) => {
          throw this.#fsError(e, `remove debris "${path}"`);
        });
        removed++;
      }
    }
    removed += await this.#removeEmptyDirs(this.root, cutoff, true);
    return removed;
  }

  async #removeEmptyDirs(dir: string, cutoff: number, isRoot: boolean): Promise<number> {
    let removed = 0;
    let empty = true;
    for await (const e of await readDirOrEmpty(dir)) {
      if (e.isDirectory) {
        removed += await this.#removeEmptyDirs(`${dir}/${e.name}`, cutoff, false);
        if (await statOrUndefined(`${dir}/${e.name}`)) empty = false;
      } else {
        empty = false;
      }
    }
    if (!isRoot && empty) {
      const st = await statOrUndefined(dir);
      if (st && (st.mtime?.getTime() ?? 0) < cutoff) {
        await Deno.remove(dir).then(() => removed++, () => {});
      }
    }
    return removed;
  }

  /** Calls `visit(relativePath, name)` for every regular file under `<root>/<rel>`. */
  async #walk(
    rel: string,
    visit: (rel: string, name: string) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    const dir = rel ? `${this.root}/${rel}` : this.root;
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return;
      throw this.#fsError(e, `list "${dir}"`);
    }
    for (const e of entries) {
      if (signal?.aborted) throw this.#aborted(rel, signal);
      const child = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) await this.#walk(child, visit, signal);
      else if (e.isFile) visit(child, e.name);
    }
  }

  async #readSidecar(key: string): Promise<Sidecar | undefined> {
    const path = `${this.root}/${key}${META_SUFFIX}`;
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
        await this.#ensureRoot();
        return undefined;
      }
      throw this.#fsError(e, `read "${path}"`, key);
    }
    try {
      const s = JSON.parse(text) as Sidecar;
      if (s.version === 1 && isSha256Hex(s.sha256) && typeof s.size === "number") return s;
    } catch { /* reported below */ }
    throw this.#error("Unknown", `Sidecar "${path}" of "${key}" is not valid lpm metadata`, key);
  }

  async #ensureRoot(): Promise<void> {
    if (this.#rootChecked) return;
    if (this.#requiredDir !== undefined) {
      const mount = await statOrUndefined(this.#requiredDir).catch((e) => {
        throw this.#fsError(e, `inspect "${this.#requiredDir}"`);
      });
      if (!mount?.isDirectory) {
        throw this.#error(
          "NotFound",
          `Storage volume path "${this.#requiredDir}" does not exist or is not a directory (is the claim mounted there?)`,
        );
      }
    }
    const st = await statOrUndefined(this.root).catch((e) => {
      throw this.#fsError(e, `inspect "${this.root}"`);
    });
    if (!st) {
      await Deno.mkdir(this.root, { recursive: true }).catch((e) => {
        throw this.#fsError(e, `create root directory "${this.root}"`);
      });
    } else if (!st.isDirectory) {
      throw this.#error(
        "PermissionDenied",
        `Storage root "${this.root}" is a file, not a directory; point the class at a directory`,
      );
    }
    this.#rootChecked = true;
  }

  #checkKey(key: string): void {
    const problem = keyProblem(key);
    if (problem) throw this.#error("InvalidKey", `Invalid object key "${key}": ${problem}`, key);
  }

  #notFound(key: string): StorageError {
    return this.#error("NotFound", `Object "${key}" does not exist at "${this.location}"`, key);
  }

  #aborted(key: string, signal: AbortSignal): StorageError {
    return new StorageError(
      "Aborted",
      `Storing "${key}" at "${this.location}" was aborted; nothing was published`,
      {
        provider: this.provider,
        location: this.location,
        key,
        cause: signal.reason,
      },
    );
  }

  #error(code: StorageErrorCode, message: string, key?: string, cause?: unknown): StorageError {
    return new StorageError(code, `${message} [provider ${this.provider}]`, {
      provider: this.provider,
      location: this.location,
      key,
      cause,
    });
  }

  /** Maps a filesystem error to a StorageError whose message says how to fix it. */
  #fsError(err: unknown, what: string, key?: string): StorageError {
    if (err instanceof StorageError) return err;
    const code = (err as { code?: string }).code ?? "";
    const cause = describeCause(err);
    if (err instanceof Deno.errors.NotFound || code === "ENOENT") {
      return this.#error("NotFound", `Cannot ${what}: it does not exist (${cause})`, key, err);
    }
    if (
      err instanceof Deno.errors.PermissionDenied || code === "EACCES" || code === "EPERM" ||
      code === "EROFS" || /read-only file system/i.test(cause)
    ) {
      return this.#error(
        "PermissionDenied",
        `Cannot ${what}: permission denied (${cause}); make "${this.root}" writable by the agent (mount options, ownership, immutable flag)`,
        key,
        err,
      );
    }
    if (code === "ENOSPC" || code === "EDQUOT" || /no space left|quota exceeded/i.test(cause)) {
      return this.#error(
        "NoSpace",
        `Cannot ${what}: no space left on the device holding "${this.root}" (${cause}); free space, grow the volume or tighten retention`,
        key,
        err,
      );
    }
    if (err instanceof Deno.errors.NotADirectory || code === "ENOTDIR") {
      return this.#error(
        "PermissionDenied",
        `Cannot ${what}: a path component is a file where a directory is needed (${cause})`,
        key,
        err,
      );
    }
    return this.#error("Unknown", `Cannot ${what}: ${cause}`, key, err);
  }
}

function infoOf(key: string, s: Sidecar): ObjectInfo {
  return {
    key,
    size: s.size,
    sha256: s.sha256,
    lastModified: new Date(s.publishedAt),
    metadata: { ...s.metadata },
  };
}

async function writeFileSynced(path: string, text: string): Promise<void> {
  const f = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
  try {
    await writeAll(f, new TextEncoder().encode(text));
    await f.sync();
  } finally {
    f.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  // Makes the renames durable; some filesystems refuse fsync on a directory.
  try {
    const d = await Deno.open(dir, { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
  } catch { /* best effort */ }
}

async function removeIfExists(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

async function statOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
      return undefined;
    }
    throw e;
  }
}

async function readDirOrEmpty(dir: string): Promise<Deno.DirEntry[]> {
  try {
    return await Array.fromAsync(Deno.readDir(dir));
  } catch {
    return [];
  }
}

/** fsyncs the file at `path`. */
async function syncFile(path: string): Promise<void> {
  const f = await Deno.open(path, { write: true });
  try {
    await f.sync();
  } finally {
    f.close();
  }
}
