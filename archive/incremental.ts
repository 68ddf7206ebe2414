/**
 * Pre-copy's two artifacts from a runtime's archives (docs/pre-copy.md):
 * the final checkpoint archive made incremental against the last pre-copy
 * round, and that round's CRIU images as an image layer of their own
 * (`checkpoint/parent/...`), which can reach the target before the freeze.
 * containerd merges the layers before the restore, so CRIU finds the parent
 * as the directory `checkpoint/parent/` next to the incremental images.
 * @module
 */
import { dedupAgainstParent, type DedupResult } from "./pagemap.ts";
import { ARCHIVE_FILES } from "./format.ts";
import { packArchive, unpackArchive } from "./write.ts";

async function runTar(args: string[], what: string): Promise<void> {
  const out = await new Deno.Command("tar", { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`Cannot ${what}: tar failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/**
 * Writes the archive `outPath`: the checkpoint archive `archivePath` (a
 * full dump, e.g. the kubelet's) with its CRIU images made incremental
 * against the full dump in `parentDir` (pages unchanged since become
 * `PE_PARENT` holes). Everything else in the archive is kept as it was.
 * `workDir` is a scratch directory (created, removed).
 */
export async function makeIncremental(
  archivePath: string,
  parentDir: string,
  opts: { outPath: string; workDir: string },
): Promise<DedupResult> {
  const stage = `${opts.workDir}/incremental-stage`;
  try {
    await unpackArchive(archivePath, stage);
    const images = `${stage}/${ARCHIVE_FILES.checkpointDir}`;
    const result = await dedupAgainstParent(images, parentDir);
    await packArchive(stage, opts.outPath);
    return result;
  } finally {
    await Deno.remove(stage, { recursive: true }).catch(() => {});
  }
}

/**
 * Writes the tar layer `outPath` holding the CRIU images of `parentDir` as
 * `checkpoint/parent/<file>` (regular files only; numeric owners), staged
 * in `workDir` (created, removed) with hard links where the filesystem allows.
 */
export async function packParentLayer(
  parentDir: string,
  opts: { outPath: string; workDir: string },
): Promise<void> {
  const files: string[] = [];
  for await (const e of Deno.readDir(parentDir)) {
    if (!e.isFile) {
      throw new Error(`Cannot pack parent layer: "${parentDir}/${e.name}" is not a regular file`);
    }
    files.push(e.name);
  }
  if (!files.some((f) => /^pagemap-\d+\.img$/.test(f))) {
    throw new Error(`Cannot pack parent layer: "${parentDir}" holds no CRIU pagemap image`);
  }
  const stage = `${opts.workDir}/parent-layer-stage`;
  const dir = `${stage}/${ARCHIVE_FILES.checkpointDir}/parent`;
  try {
    await Deno.mkdir(dir, { recursive: true });
    for (const f of files) {
      await Deno.link(`${parentDir}/${f}`, `${dir}/${f}`)
        .catch(() => Deno.copyFile(`${parentDir}/${f}`, `${dir}/${f}`));
    }
    await runTar(
      [
        "--numeric-owner",
        "--sort=name",
        "-C",
        stage,
        "-cf",
        opts.outPath,
        ARCHIVE_FILES.checkpointDir,
      ],
      `pack parent layer "${opts.outPath}"`,
    );
  } finally {
    await Deno.remove(stage, { recursive: true }).catch(() => {});
  }
}
