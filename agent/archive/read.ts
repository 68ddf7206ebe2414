/**
 * Reads and validates checkpoint archives without unpacking them: one
 * streaming pass over the tar, holding only the small metadata entries.
 * @module
 */
import { tarEntries, type TarEntry, tarFileEntries } from "./_tar.ts";
import { ARCHIVE_FILES, CheckpointArchiveError, type ConfigDump } from "./format.ts";
import { type CriuStats, parseCriuStats } from "./stats.ts";

/** What an archive holds. */
export interface ArchiveInfo {
  /** Parsed `config.dump`. */
  config: ConfigDump;
  /** Parsed `spec.dump` (OCI runtime spec). */
  spec: Record<string, unknown> & { annotations?: Record<string, string> };
  /** CRIU dump statistics, when `stats-dump` is present and readable. */
  stats?: CriuStats;
  /** Top-level entry names. */
  topLevel: string[];
  /** Bytes of regular files under `checkpoint/`. */
  checkpointBytes: number;
  /** Size of `rootfs-diff.tar` (0 when absent). */
  rootfsDiffBytes: number;
  /** Paths listed in `deleted.files`. */
  deletedFiles: string[];
  /** Whether the archive stream was gzip-compressed. */
  compressed: boolean;
}

async function openArchive(path: string): Promise<{
  entries: AsyncGenerator<TarEntry>;
  compressed: boolean;
}> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (err) {
    throw new CheckpointArchiveError(
      path,
      `Cannot read checkpoint archive "${path}": ${(err as Error).message}`,
    );
  }
  const head = new Uint8Array(4);
  const n = await file.read(head);
  await file.seek(0, Deno.SeekMode.Start);
  if (n === 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) {
    file.close();
    throw new CheckpointArchiveError(
      path,
      `Cannot read checkpoint archive "${path}": zstd-compressed archives are not supported; ` +
        "decompress it first (zstd -d)",
    );
  }
  if (n !== null && n >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
    return {
      entries: tarEntries(file.readable.pipeThrough(new DecompressionStream("gzip"))),
      compressed: true,
    };
  }
  file.close();
  return { entries: await tarFileEntries(path), compressed: false };
}

function parseJson<T>(path: string, entry: string, bytes: Uint8Array): T {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as T;
  } catch (err) {
    throw new CheckpointArchiveError(
      path,
      `Invalid checkpoint archive "${path}": "${entry}" is not JSON (${(err as Error).message})`,
    );
  }
}

/**
 * Validates a checkpoint archive and returns its metadata. Throws a
 * {@linkcode CheckpointArchiveError} naming what is missing: `checkpoint/`
 * (with CRIU's `inventory.img`), `config.dump` or `spec.dump`.
 */
export async function readArchive(path: string): Promise<ArchiveInfo> {
  const { entries: iter, compressed } = await openArchive(path);
  const top = new Set<string>();
  let config: ConfigDump | undefined;
  let spec: ArchiveInfo["spec"] | undefined;
  let statsBytes: Uint8Array | undefined;
  let deleted: string[] = [];
  let checkpointBytes = 0;
  let rootfsDiffBytes = 0;
  let inventory = false;
  let entries = 0;
  try {
    for await (const e of iter) {
      entries++;
      if (!e.name) continue;
      top.add(e.name.split("/")[0]);
      if (e.name === ARCHIVE_FILES.config) config = parseJson(path, e.name, await e.bytes());
      else if (e.name === ARCHIVE_FILES.spec) spec = parseJson(path, e.name, await e.bytes());
      else if (e.name === ARCHIVE_FILES.statsDump) statsBytes = await e.bytes();
      else if (e.name === ARCHIVE_FILES.deletedFiles) {
        deleted = parseJson<string[] | null>(path, e.name, await e.bytes()) ?? [];
      } else if (e.name === ARCHIVE_FILES.rootfsDiff) rootfsDiffBytes = e.size;
      else if (e.name.startsWith(`${ARCHIVE_FILES.checkpointDir}/`)) {
        if (e.type === "file") checkpointBytes += e.size;
        if (e.name === `${ARCHIVE_FILES.checkpointDir}/inventory.img`) inventory = true;
      }
    }
  } catch (err) {
    if (err instanceof CheckpointArchiveError) throw err;
    throw new CheckpointArchiveError(
      path,
      `Invalid checkpoint archive "${path}": ${(err as Error).message}`,
    );
  }
  if (entries === 0) {
    throw new CheckpointArchiveError(path, `Invalid checkpoint archive "${path}": it is empty`);
  }
  if (!top.has(ARCHIVE_FILES.checkpointDir)) {
    throw new CheckpointArchiveError(
      path,
      `Invalid checkpoint archive "${path}": no "checkpoint/" directory of CRIU images ` +
        `(entries: ${[...top].slice(0, 10).join(", ")})`,
    );
  }
  if (!inventory) {
    throw new CheckpointArchiveError(
      path,
      `Invalid checkpoint archive "${path}": "checkpoint/" has no CRIU "inventory.img"`,
    );
  }
  if (!config) {
    throw new CheckpointArchiveError(
      path,
      `Invalid checkpoint archive "${path}": no "config.dump"`,
    );
  }
  if (!spec) {
    throw new CheckpointArchiveError(path, `Invalid checkpoint archive "${path}": no "spec.dump"`);
  }
  let stats: CriuStats | undefined;
  if (statsBytes) {
    try {
      stats = parseCriuStats(statsBytes);
    } catch {
      // A damaged stats file does not make the checkpoint unusable.
      stats = undefined;
    }
  }
  return {
    config,
    spec,
    stats,
    topLevel: [...top].sort(),
    checkpointBytes,
    rootfsDiffBytes,
    deletedFiles: deleted,
    compressed,
  };
}

/** Validates an archive; throws {@linkcode CheckpointArchiveError} when unusable. */
export async function validateArchive(path: string): Promise<void> {
  await readArchive(path);
}

/**
 * CRIU dump statistics of an archive as a plain record, or undefined when
 * the archive has no readable `stats-dump` (the agent's optional reader).
 */
export async function readArchiveStats(
  path: string,
): Promise<Record<string, number> | undefined> {
  try {
    return (await readArchive(path)).stats;
  } catch {
    return undefined;
  }
}
