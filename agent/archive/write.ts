/**
 * Packs a staged checkpoint directory into an archive and unpacks one,
 * with GNU tar (numeric owners, no `./` prefix: the names CRI-O writes).
 * @module
 */
import { ARCHIVE_FILES, CheckpointArchiveError } from "./format.ts";

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

/** Unpacks the archive `path` into `dir` (created when missing). */
export async function unpackArchive(
  path: string,
  dir: string,
  opts: { only?: string[] } = {},
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await runTar(
    ["--numeric-owner", "-C", dir, "-xf", path, ...(opts.only ?? [])],
    `unpack checkpoint archive "${path}"`,
  );
}
