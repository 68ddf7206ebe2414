/**
 * The CRI-O / Podman checkpoint archive: layout, validation, metadata and
 * CRIU statistics and memory images, packing and unpacking.
 * @module
 */
export {
  ARCHIVE_FILES,
  CheckpointArchiveError,
  checkpointArchivePolicy,
  checkpointLayoutProblem,
} from "./format.ts";
export type { ConfigDump } from "./format.ts";
export { readArchive, readArchiveStats, validateArchive } from "./read.ts";
export type { ArchiveInfo, ReadArchiveOptions } from "./read.ts";
export { extractTar } from "./extract.ts";
export type { ExtractOptions } from "./extract.ts";
export { encodeCriuStats, parseCriuStats } from "./stats.ts";
export type { CriuStats } from "./stats.ts";
export { packArchive, unpackArchive } from "./write.ts";
export {
  dedupAgainstParent,
  encodePagemap,
  pageOffsets,
  parsePagemap,
  PE_LAZY,
  PE_PARENT,
  PE_PRESENT,
} from "./pagemap.ts";
export type { DedupResult, Pagemap, PagemapEntry } from "./pagemap.ts";
export { makeIncremental, packParentLayer, parentPath, writePassThrough } from "./incremental.ts";
export { tarEntries, tarFileEntries } from "./_tar.ts";
export type { TarEntry, TarReadOptions } from "./_tar.ts";
