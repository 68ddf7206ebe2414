/**
 * Packs a staged checkpoint directory into an archive with GNU tar (numeric
 * owners, no `./` prefix: the names CRI-O writes), and unpacks one with the
 * confined extractor (the archive comes from outside).
 * @module
 */
import { ConfinementError } from "../confine/mod.ts";
import { type ExtractOptions, extractTar } from "./extract.ts";
import { ARCHIVE_FILES, CheckpointArchiveError, checkpointArchivePolicy } from "./format.ts";

async function runTar(args: string[], what: string): Promise<void> {
  const out = await new Deno.Command("tar", { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`Cannot ${what}: tar failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/** Order of the well-known entries; others follow by name. */
const ORDER: string[] = [
  ARCHIVE_FILES.config,
  ARCHIVE_FILES.spec,
  ARCHIVE_FILES.networkStatus,
  ARCHIVE_FILES.statsDump,
  ARCHIVE_FILES.dumpLog,
  ARCHIVE_FILES.deletedFiles,
  ARCHIVE_FILES.rootfsDiff,
  ARCHIVE_FILES.checkpointDir,
];

/**
 * Writes the archive `outPath` from the staged directory `dir` (which must
 * hold `checkpoint/`, `config.dump` and `spec.dump`).
 */
export async function packArchive(dir: string, outPath: string): Promise<void> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  for (const need of [ARCHIVE_FILES.checkpointDir, ARCHIVE_FILES.config, ARCHIVE_FILES.spec]) {
    if (!names.includes(need)) {
      throw new CheckpointArchiveError(
        outPath,
        `Cannot pack checkpoint archive "${outPath}": "${need}" is missing in "${dir}"`,
      );
    }
  }
  names.sort((a, b) => {
    const ia = ORDER.indexOf(a), ib = ORDER.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });
  await runTar(
    ["--numeric-owner", "--sort=name", "-C", dir, "-cf", outPath, ...names],
    `pack checkpoint archive "${outPath}"`,
  );
}

/**
 * Unpacks the archive `path` into `dir` (created when missing): only the
 * checkpoint archive layout (top-level files, `checkpoint/`), no links or
 * devices; a refused member throws {@linkcode CheckpointArchiveError}.
 */
export async function unpackArchive(
  path: string,
  dir: string,
  opts: Pick<ExtractOptions, "only" | "writeFile"> = {},
): Promise<void> {
  try {
    await extractTar(path, dir, checkpointArchivePolicy(`checkpoint archive "${path}"`), opts);
  } catch (err) {
    if (err instanceof ConfinementError) throw new CheckpointArchiveError(path, err.message);
    throw new CheckpointArchiveError(
      path,
      `Cannot unpack checkpoint archive "${path}": ${(err as Error).message}`,
    );
  }
}
