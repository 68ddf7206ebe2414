/**
 * Pre-copy's two artifacts from a runtime's archives (docs/pre-copy.md):
 * the final checkpoint archive made incremental against the last pre-copy
 * round, and that round's CRIU images as an image layer of their own
 * (`checkpoint/parent/...`), which can reach the target before the freeze.
 * containerd merges the layers before the restore, so CRIU finds the parent
 * as the directory `checkpoint/parent/` next to the incremental images.
 * @module
 */
import {
  dedupAgainstParent,
  dedupPagesStream,
  type DedupResult,
  encodePagemap,
  parsePagemap,
  PE_PARENT,
} from "./pagemap.ts";
import { ARCHIVE_FILES } from "./format.ts";
import { packArchive, unpackArchive } from "./write.ts";

async function runTar(args: string[], what: string): Promise<void> {
  const out = await new Deno.Command("tar", { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`Cannot ${what}: tar failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/** Largest pagemap image read into memory (a process's runs, not its pages). */
const MAX_PAGEMAP_BYTES = 64 << 20;

/**
 * Unpacks a checkpoint archive, making each `checkpoint/pages-<n>.img` whose
 * pagemap came before it incremental against `parentDir` on the way (only
 * the changed pages written). Returns the pagemaps so handled.
 */
async function unpackStreamingDedup(
  archivePath: string,
  stage: string,
  parentDir: string,
): Promise<{ names: Set<string>; result: DedupResult }> {
  const seen = new Map<number, { name: string; bytes: Uint8Array; path: string }>();
  const names = new Set<string>();
  const result: DedupResult = { pages: 0, fromParent: 0, bytes: 0 };
  await unpackArchive(archivePath, stage, {
    writeFile: async (member, entry, path) => {
      const map = /^checkpoint\/(pagemap-\d+\.img)$/.exec(member);
      if (map) {
        const bytes = await entry.bytes(MAX_PAGEMAP_BYTES);
        await Deno.writeFile(path, bytes, { createNew: true, mode: 0o600 });
        seen.set(parsePagemap(bytes).pagesId, { name: map[1], bytes, path });
        return true;
      }
      const pages = /^checkpoint\/pages-(\d+)\.img$/.exec(member);
      const pm = pages ? seen.get(Number(pages[1])) : undefined;
      if (!pm || names.has(pm.name)) return false;
      const r = await dedupPagesStream(pm.bytes, pm.name, parentDir, entry.chunks(), path);
      await Deno.writeFile(pm.path, r.pagemap);
      names.add(pm.name);
      result.pages += r.result.pages;
      result.fromParent += r.result.fromParent;
      result.bytes += r.result.bytes;
      return true;
    },
  });
  return { names, result };
}

/** `parent/parent/...`: the image directory `depth` parents below `checkpoint/`. */
export function parentPath(depth: number): string {
  if (!Number.isInteger(depth) || depth < 1 || depth > MAX_DEPTH) {
    throw new Error(`Bad parent depth ${depth} (1 to ${MAX_DEPTH})`);
  }
  return Array(depth).fill("parent").join("/");
}

/** Deepest parent chain an image may hold (pre-copy rounds). */
const MAX_DEPTH = 16;

/**
 * Writes `levels` pass-through image directories under `imagesDir`
 * (`parent/`, `parent/parent/`, ...): each holds `roundDir`'s images with
 * every page marked as in the parent and no pages of its own, so that CRIU,
 * following `parent` links, goes through them to the round `levels + 1`
 * deep. Pre-copy places each round at a depth fixed when it is taken (the
 * round limit minus its number); when rounds stop early, these fill the gap.
 * containerd refuses symbolic links in a checkpoint, so levels are real
 * directories.
 */
export async function writePassThrough(
  roundDir: string,
  imagesDir: string,
  levels: number,
): Promise<void> {
  for (let j = 1; j <= levels; j++) {
    const dir = `${imagesDir}/${parentPath(j)}`;
    await Deno.mkdir(dir, { recursive: true });
    const pagesFiles = new Set<string>();
    for await (const e of Deno.readDir(roundDir)) {
      if (!e.isFile || !/^pagemap-.*\.img$/.test(e.name)) continue;
      const pm = parsePagemap(await Deno.readFile(`${roundDir}/${e.name}`));
      const entries = pm.entries.map((x) => ({
        vaddr: x.vaddr,
        nrPages: x.nrPages,
        flags: PE_PARENT,
      }));
      await Deno.writeFile(`${dir}/${e.name}`, encodePagemap({ ...pm, entries }));
      pagesFiles.add(`pages-${pm.pagesId}.img`);
    }
    for await (const e of Deno.readDir(roundDir)) {
      if (!e.isFile || /^pagemap-.*\.img$/.test(e.name)) continue;
      if (pagesFiles.has(e.name)) await Deno.writeFile(`${dir}/${e.name}`, new Uint8Array());
      else await Deno.copyFile(`${roundDir}/${e.name}`, `${dir}/${e.name}`);
    }
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
  opts: {
    outPath: string;
    workDir: string;
    /**
     * The parent is deeper than `checkpoint/parent/` (pre-copy rounds that
     * stopped before their limit): this many pass-through levels go into the
     * archive first ({@linkcode writePassThrough}).
     */
    passThrough?: number;
  },
): Promise<DedupResult> {
  const stage = `${opts.workDir}/incremental-stage`;
  try {
    // Each pages image is compared as it is read from the archive (its pagemap comes
    // before it: CRI-O and containerd write the images sorted by name), so only the
    // changed pages are ever written; any other order falls back to comparing after.
    const streamed = await unpackStreamingDedup(archivePath, stage, parentDir);
    const images = `${stage}/${ARCHIVE_FILES.checkpointDir}`;
    const rest = await dedupAgainstParent(images, parentDir, { skip: streamed.names });
    const result = {
      pages: streamed.result.pages + rest.pages,
      fromParent: streamed.result.fromParent + rest.fromParent,
      bytes: streamed.result.bytes + rest.bytes,
    };
    if (opts.passThrough) await writePassThrough(parentDir, images, opts.passThrough);
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
 * With `depth`, the directory is `checkpoint/parent/.../parent/` that
 * many levels down (pre-copy round k of at most L: depth L - k + 1).
 */
export async function packParentLayer(
  parentDir: string,
  opts: { outPath: string; workDir: string; depth?: number },
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
  const dir = `${stage}/${ARCHIVE_FILES.checkpointDir}/${parentPath(opts.depth ?? 1)}`;
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
