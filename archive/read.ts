/**
 * Reads and validates checkpoint archives without unpacking them: one
 * streaming pass over the tar, holding only the small metadata entries.
 * @module
 */
import { boundedInflate, ConfinementError, LIMITS, MemberChecker } from "../confine/mod.ts";
import { tarEntries, type TarEntry, tarFileEntries } from "./_tar.ts";
import {
  ARCHIVE_FILES,
  CheckpointArchiveError,
  checkpointArchivePolicy,
  type ConfigDump,
} from "./format.ts";
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

/** Bounds of {@linkcode readArchive} (defaults: `LIMITS` of `confine/`). */
export interface ReadArchiveOptions {
  /** Most bytes a gzip-compressed archive may decompress to. */
  maxInflatedBytes?: number;
  /** Largest member. */
  maxEntryBytes?: number;
}

async function openArchive(path: string, opts: ReadArchiveOptions): Promise<{
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
      entries: tarEntries(
        boundedInflate(
          file.readable,
          (s) =>
            s.pipeThrough(
              new DecompressionStream("gzip") as TransformStream<Uint8Array, Uint8Array>,
            ),
          {
            what: `gzip-compressed checkpoint archive "${path}"`,
            maxBytes: opts.maxInflatedBytes,
          },
        ),
        opts,
      ),
      compressed: true,
    };
  }
  file.close();
  return { entries: await tarFileEntries(path, opts), compressed: false };
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

/** Why a `deleted.files` entry cannot be applied, or undefined. */
function deletedProblem(p: unknown): string | undefined {
  if (typeof p !== "string") return "it is not a string";
  if (!p.startsWith("/")) return "it is not an absolute path in the container";
  if (p.includes("\0")) return "it contains a NUL byte";
  if (p.length > 4096) return "it is longer than 4096 bytes";
  if (p.split("/").includes("..")) return 'it contains ".."';
  if (p.split("/").every((s) => s === "" || s === ".")) return "it names the root";
  return undefined;
}

/**
 * Validates a checkpoint archive and returns its metadata. Throws a
 * {@linkcode CheckpointArchiveError} naming what is missing: `checkpoint/`
 * (with CRIU's `inventory.img`), `config.dump` or `spec.dump`; or what is
 * hostile: a member outside the layout (absolute, `..`, links, devices,
 * other directories), a size over the limits, a `deleted.files` entry that
 * leaves the root.
 */
export async function readArchive(
  path: string,
  opts: ReadArchiveOptions = {},
): Promise<ArchiveInfo> {
  const { entries: iter, compressed } = await openArchive(path, opts);
  const check = new MemberChecker(checkpointArchivePolicy(`checkpoint archive "${path}"`));
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
      if (!check.check(e)) continue;
      top.add(e.name.split("/")[0]);
      const small = () => e.bytes(LIMITS.metadataBytes);
      if (e.name === ARCHIVE_FILES.config) config = parseJson(path, e.name, await small());
      else if (e.name === ARCHIVE_FILES.spec) spec = parseJson(path, e.name, await small());
      else if (e.name === ARCHIVE_FILES.statsDump) statsBytes = await small();
      else if (e.name === ARCHIVE_FILES.deletedFiles) {
        deleted = parseDeleted(path, await small());
      } else if (e.name === ARCHIVE_FILES.rootfsDiff) rootfsDiffBytes = e.size;
      else if (e.name.startsWith(`${ARCHIVE_FILES.checkpointDir}/`)) {
        if (e.type === "file") checkpointBytes += e.size;
        if (e.name === `${ARCHIVE_FILES.checkpointDir}/inventory.img`) inventory = true;
      }
    }
  } catch (err) {
    if (err instanceof CheckpointArchiveError) throw err;
    if (err instanceof ConfinementError) throw new CheckpointArchiveError(path, err.message);
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
  for (const [what, v] of [[ARCHIVE_FILES.config, config], [ARCHIVE_FILES.spec, spec]] as const) {
    if (!v || typeof v !== "object" || Array.isArray(v)) {
      throw new CheckpointArchiveError(
        path,
        `Invalid checkpoint archive "${path}": "${what}" is not a JSON object`,
      );
    }
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

function parseDeleted(path: string, bytes: Uint8Array): string[] {
  const list = parseJson<unknown>(path, ARCHIVE_FILES.deletedFiles, bytes) ?? [];
  if (!Array.isArray(list)) {
    throw new CheckpointArchiveError(
      path,
      `Invalid checkpoint archive "${path}": "${ARCHIVE_FILES.deletedFiles}" is not a JSON list`,
    );
  }
  list.forEach((p, i) => {
    const why = deletedProblem(p);
    if (why) {
      throw new CheckpointArchiveError(
        path,
        `Invalid checkpoint archive "${path}": "${ARCHIVE_FILES.deletedFiles}" entry ${i} ` +
          `${JSON.stringify(p)}: ${why}`,
      );
    }
  });
  return list as string[];
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
