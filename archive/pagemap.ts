/**
 * CRIU's memory images (`pagemap-<id>.img` + `pages-<n>.img`) and an
 * incremental dump made by comparing page contents instead of the kernel's
 * soft-dirty bit.
 *
 * CRIU makes incremental dumps (pre-dump, then a dump with
 * `--prev-images-dir`) only with memory tracking, which needs a kernel built
 * with `CONFIG_MEM_SOFT_DIRTY`. {@linkcode dedupAgainstParent} gets the same
 * image set from two full dumps: every page of the later dump whose bytes
 * equal the earlier dump's page at the same address becomes a `PE_PARENT`
 * hole, and only the other pages stay in `pages-<n>.img`. CRIU's restore then
 * reads the holes from the `parent` entry of the image directory (a directory
 * of its own here, so that the archive carries no symlink), which the
 * containerd checkpoint-image path keeps: docs/pre-copy.md.
 *
 * A pagemap image: two magics, then entries of a little-endian u32 length and
 * a protobuf message: first `PagemapHead { pages_id = 1 }`, then
 * `PagemapEntry { vaddr = 1, compat_nr_pages = 2, in_parent = 3, flags = 4,
 * nr_pages = 5 }`.
 * @module
 */

/** The page is in the parent image directory. */
export const PE_PARENT = 1;
/** The page may be restored lazily (it is still in the pages image). */
export const PE_LAZY = 2;
/** The page is in this directory's pages image. */
export const PE_PRESENT = 4;

const PAGE = 4096;
/** Pages compared per read (4 MiB). */
const CHUNK_PAGES = 1024;
/** A pagemap image larger than this is refused (64 MiB: millions of entries). */
const MAX_PAGEMAP_BYTES = 64 << 20;

/** One run of pages. */
export interface PagemapEntry {
  /** Address of the first page. */
  vaddr: number;
  /** Number of pages. */
  nrPages: number;
  /** `PE_*` bits. */
  flags: number;
}

/** A decoded `pagemap-<id>.img`. */
export interface Pagemap {
  /** The two magics, kept as they were. */
  magic: Uint8Array;
  /** The `pages-<n>.img` these entries read from. */
  pagesId: number;
  /** The runs, in image order. */
  entries: PagemapEntry[];
}

function varint(b: Uint8Array, pos: number): [number, number] {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= b.length) throw new Error("Truncated protobuf varint in a pagemap image");
    const x = b[pos++];
    v += (x & 0x7f) * mul;
    mul *= 128;
    if (!(x & 0x80)) return [v, pos];
  }
  throw new Error("Protobuf varint longer than 10 bytes in a pagemap image");
}

function putVarint(out: number[], v: number): void {
  while (v >= 128) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

/** Varint fields of one message (pagemap messages have no other wire type). */
function fields(b: Uint8Array): Map<number, number> {
  const out = new Map<number, number>();
  let pos = 0;
  while (pos < b.length) {
    const [key, p1] = varint(b, pos);
    if ((key & 7) !== 0) throw new Error(`Unexpected wire type ${key & 7} in a pagemap entry`);
    const [v, p2] = varint(b, p1);
    out.set(Math.floor(key / 8), v);
    pos = p2;
  }
  return out;
}

function toEntry(f: Map<number, number>): PagemapEntry {
  const vaddr = f.get(1);
  if (vaddr === undefined || vaddr % PAGE !== 0) {
    throw new Error(`Pagemap entry without a page-aligned vaddr (${vaddr})`);
  }
  const nrPages = f.get(5) ?? f.get(2) ?? 0;
  const flags = f.get(4) ?? (f.get(3) ? PE_PARENT : PE_PRESENT);
  if (flags & ~(PE_PARENT | PE_LAZY | PE_PRESENT)) {
    throw new Error(`Pagemap entry at 0x${vaddr.toString(16)} has unknown flags ${flags}`);
  }
  return { vaddr, nrPages, flags };
}

/** Decodes a pagemap image; throws on anything but CRIU's layout. */
export function parsePagemap(bytes: Uint8Array): Pagemap {
  if (bytes.length > MAX_PAGEMAP_BYTES) {
    throw new Error(`Pagemap image of ${bytes.length} bytes is above ${MAX_PAGEMAP_BYTES}`);
  }
  if (bytes.length < 12) throw new Error(`Pagemap image too short (${bytes.length} bytes)`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const messages: Map<number, number>[] = [];
  let pos = 8;
  while (pos < bytes.length) {
    if (pos + 4 > bytes.length) throw new Error("Truncated pagemap entry length");
    const len = dv.getUint32(pos, true);
    pos += 4;
    if (pos + len > bytes.length) throw new Error("Truncated pagemap entry");
    messages.push(fields(bytes.subarray(pos, pos + len)));
    pos += len;
  }
  const head = messages.shift();
  const pagesId = head?.get(1);
  if (pagesId === undefined) throw new Error("Pagemap image without a head (pages_id)");
  return { magic: bytes.slice(0, 8), pagesId, entries: messages.map(toEntry) };
}

/** Encodes a pagemap image as CRIU 4 writes it (`nr_pages` in field 5, field 2 zero). */
export function encodePagemap(pm: Pagemap): Uint8Array {
  const out: number[] = [...pm.magic];
  const message = (body: number[]) => {
    const n = body.length;
    out.push(n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff, ...body);
  };
  const head: number[] = [0x08];
  putVarint(head, pm.pagesId);
  message(head);
  for (const e of pm.entries) {
    const body: number[] = [0x08];
    putVarint(body, e.vaddr);
    body.push(0x10, 0x00, 0x20);
    putVarint(body, e.flags);
    body.push(0x28);
    putVarint(body, e.nrPages);
    message(body);
  }
  return new Uint8Array(out);
}

/** Where each page of a dump lies in its pages image (pages in the parent are absent). */
export function pageOffsets(pm: Pagemap): Map<number, number> {
  const out = new Map<number, number>();
  let off = 0;
  for (const e of pm.entries) {
    if (!(e.flags & PE_PRESENT)) continue;
    for (let i = 0; i < e.nrPages; i++) out.set(e.vaddr + i * PAGE, off + i * PAGE);
    off += e.nrPages * PAGE;
  }
  return out;
}

/** Appends a run, merging it into the last one when contiguous with the same flags. */
function pushRun(runs: PagemapEntry[], vaddr: number, flags: number): void {
  const last = runs[runs.length - 1];
  if (last && last.flags === flags && last.vaddr + last.nrPages * PAGE === vaddr) {
    last.nrPages++;
  } else {
    runs.push({ vaddr, nrPages: 1, flags });
  }
}

async function readAt(f: Deno.FsFile, off: number, buf: Uint8Array): Promise<void> {
  await f.seek(off, Deno.SeekMode.Start);
  let got = 0;
  while (got < buf.length) {
    const n = await f.read(buf.subarray(got));
    if (n === null) throw new Error(`Pages image ends at ${off + got}, before ${off + buf.length}`);
    got += n;
  }
}

/** Page `at / PAGE` of `a` against the same page of `b`. */
function samePage(a: Uint8Array, b: Uint8Array, at: number): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset + at, PAGE / 4);
  const y = new Uint32Array(b.buffer, b.byteOffset + at, PAGE / 4);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** What {@linkcode dedupAgainstParent} did to one image set. */
export interface DedupResult {
  /** Pages in the later dump. */
  pages: number;
  /** Of those, now read from the parent. */
  fromParent: number;
  /** Bytes left in the pages images. */
  bytes: number;
}

/**
 * Where a process's pages sit in its pages image, by address: its present
 * runs sorted by address with their offsets, searched in O(log runs). (A map
 * of every page cost ~120 MiB of heap for a 1 GiB dump: its addresses are
 * above 2^31, each a heap number.)
 */
class PageIndex {
  readonly #starts: Float64Array;
  readonly #ends: Float64Array;
  readonly #offsets: Float64Array;
  constructor(pm: Pagemap) {
    const runs: [number, number, number][] = [];
    let off = 0;
    for (const e of pm.entries) {
      if (!(e.flags & PE_PRESENT)) continue;
      runs.push([e.vaddr, e.vaddr + e.nrPages * PAGE, off]);
      off += e.nrPages * PAGE;
    }
    runs.sort((a, b) => a[0] - b[0]);
    this.#starts = Float64Array.from(runs, (r) => r[0]);
    this.#ends = Float64Array.from(runs, (r) => r[1]);
    this.#offsets = Float64Array.from(runs, (r) => r[2]);
  }
  /** The offset of the page at `vaddr`, or undefined when the image does not hold it. */
  get(vaddr: number): number | undefined {
    let lo = 0, hi = this.#starts.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (vaddr < this.#starts[mid]) hi = mid - 1;
      else if (vaddr >= this.#ends[mid]) lo = mid + 1;
      else return this.#offsets[mid] + (vaddr - this.#starts[mid]);
    }
    return undefined;
  }
}

/** The parent side of one pagemap: its page offsets and its open pages image. */
interface ParentPages {
  offsets: PageIndex;
  file: Deno.FsFile;
}

async function openParent(parentDir: string, name: string): Promise<ParentPages | undefined> {
  let pm: Pagemap;
  try {
    pm = parsePagemap(await Deno.readFile(`${parentDir}/${name}`));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined; // a process the parent did not have
    throw err;
  }
  const file = await Deno.open(`${parentDir}/pages-${pm.pagesId}.img`);
  return { offsets: new PageIndex(pm), file };
}

/** Buffers reused for every chunk of one pagemap (allocating them per chunk fed the GC). */
interface ChunkBuffers {
  ours: Uint8Array;
  theirs: Uint8Array;
  kept: Uint8Array;
}

/**
 * Reads the parent's copy of `n` pages from `vaddr` into `buf` in one read
 * when it holds them all contiguously in its pages image (the usual case:
 * the same mappings dumped twice); else returns false and the caller looks
 * page by page.
 */
async function parentChunk(
  parent: ParentPages | undefined,
  vaddr: number,
  buf: Uint8Array,
): Promise<boolean> {
  const at = parent?.offsets.get(vaddr);
  if (!parent || at === undefined) return false;
  for (let i = 1; i < buf.length / PAGE; i++) {
    if (parent.offsets.get(vaddr + i * PAGE) !== at + i * PAGE) return false;
  }
  await readAt(parent.file, at, buf);
  return true;
}

/** Compares `n` pages at `vaddr` (in `b.ours`); appends runs; returns the bytes kept in `b.kept`. */
async function compareChunk(
  parent: ParentPages | undefined,
  e: PagemapEntry,
  vaddr: number,
  n: number,
  b: ChunkBuffers,
  out: { runs: PagemapEntry[]; res: DedupResult },
): Promise<number> {
  const ours = b.ours.subarray(0, n * PAGE);
  const theirs = b.theirs.subarray(0, n * PAGE);
  const whole = await parentChunk(parent, vaddr, theirs);
  let kept = 0;
  for (let i = 0; i < n; i++) {
    const va = vaddr + i * PAGE;
    const at = whole ? undefined : parent?.offsets.get(va);
    if (at !== undefined) await readAt(parent!.file, at, theirs.subarray(i * PAGE, (i + 1) * PAGE));
    const same = (whole || at !== undefined) && samePage(ours, theirs, i * PAGE);
    out.res.pages++;
    if (same) {
      out.res.fromParent++;
      pushRun(out.runs, va, PE_PARENT);
    } else {
      b.kept.set(ours.subarray(i * PAGE, (i + 1) * PAGE), kept);
      kept += PAGE;
      pushRun(out.runs, va, e.flags);
    }
  }
  return kept;
}

/**
 * The core of a dedup: our pages (read in order by `readOurs`, as the pages
 * image holds them) against the parent's; kept pages go to `dst`. Returns
 * the new pagemap runs and the counts.
 */
async function dedupPages(
  pm: Pagemap,
  parent: ParentPages | undefined,
  readOurs: (buf: Uint8Array) => Promise<void>,
  dst: Deno.FsFile | undefined,
): Promise<{ runs: PagemapEntry[]; res: DedupResult }> {
  const out = { runs: [] as PagemapEntry[], res: { pages: 0, fromParent: 0, bytes: 0 } };
  const size = CHUNK_PAGES * PAGE;
  const b = {
    ours: new Uint8Array(size),
    theirs: new Uint8Array(size),
    kept: new Uint8Array(size),
  };
  for (const e of pm.entries) {
    for (let first = 0; first < e.nrPages; first += CHUNK_PAGES) {
      const n = Math.min(CHUNK_PAGES, e.nrPages - first);
      await readOurs(b.ours.subarray(0, n * PAGE));
      const kept = await compareChunk(parent, e, e.vaddr + first * PAGE, n, b, out);
      if (kept && dst) await writeAll(dst, b.kept.subarray(0, kept));
      out.res.bytes += kept;
    }
  }
  return out;
}

function refuseIncremental(pm: Pagemap, what: string): void {
  if (pm.entries.some((e) => e.flags & PE_PARENT)) {
    throw new Error(`"${what}" is already incremental (it has pages in a parent)`);
  }
}

/** Rewrites one pagemap of `dir` (and its pages image) against the parent's; in place. */
async function dedupOne(
  dir: string,
  parentDir: string,
  name: string,
  opts: { countOnly?: boolean; outDir?: string },
): Promise<DedupResult & { pagesId: number }> {
  const pm = parsePagemap(await Deno.readFile(`${dir}/${name}`));
  refuseIncremental(pm, `${dir}/${name}`);
  const pagesPath = `${dir}/pages-${pm.pagesId}.img`;
  const parent = await openParent(parentDir, name);
  const src = await Deno.open(pagesPath);
  const outPages = opts.outDir ? `${opts.outDir}/pages-${pm.pagesId}.img` : `${pagesPath}.dedup`;
  const dst = opts.countOnly
    ? undefined
    : await Deno.open(outPages, { write: true, create: true, truncate: true });
  let off = 0;
  let out;
  try {
    out = await dedupPages(pm, parent, async (buf) => {
      await readAt(src, off, buf);
      off += buf.length;
    }, dst);
  } finally {
    src.close();
    dst?.close();
    parent?.file.close();
  }
  const res = { ...out.res, pagesId: pm.pagesId };
  if (opts.countOnly) return res;
  if (opts.outDir) {
    await Deno.writeFile(`${opts.outDir}/${name}`, encodePagemap({ ...pm, entries: out.runs }));
    return res;
  }
  await Deno.rename(`${pagesPath}.dedup`, pagesPath);
  await Deno.writeFile(`${dir}/${name}`, encodePagemap({ ...pm, entries: out.runs }));
  return res;
}

/**
 * The streaming form of one pagemap's dedup, for a pages image read from a
 * stream (a tar member) rather than a file: `pagemap` is that process's
 * pagemap image (read before), `name` its file name (the parent's pagemap
 * of the same name is the comparison base), `pages` the pages image's
 * bytes in order. Writes the kept pages to `outPages` and returns the new
 * pagemap image with the counts. Nothing of the pages image is held in
 * memory beyond one chunk.
 */
export async function dedupPagesStream(
  pagemap: Uint8Array,
  name: string,
  parentDir: string,
  pages: AsyncIterable<Uint8Array>,
  outPages: string,
): Promise<{ pagemap: Uint8Array; result: DedupResult }> {
  const pm = parsePagemap(pagemap);
  refuseIncremental(pm, name);
  const parent = await openParent(parentDir, name);
  const dst = await Deno.open(outPages, { write: true, createNew: true, mode: 0o600 });
  const it = pages[Symbol.asyncIterator]();
  let pending: Uint8Array = new Uint8Array(0);
  const readOurs = async (buf: Uint8Array) => {
    let got = 0;
    while (got < buf.length) {
      if (!pending.length) {
        const r = await it.next();
        if (r.done) throw new Error(`Pages image of "${name}" ends before its pagemap's pages`);
        pending = r.value;
        continue;
      }
      const k = Math.min(pending.length, buf.length - got);
      buf.set(pending.subarray(0, k), got);
      pending = pending.subarray(k);
      got += k;
    }
  };
  try {
    const out = await dedupPages(pm, parent, readOurs, dst);
    if (pending.length || !(await it.next()).done) {
      throw new Error(`Pages image of "${name}" holds more than its pagemap's pages`);
    }
    return { pagemap: encodePagemap({ ...pm, entries: out.runs }), result: out.res };
  } finally {
    dst.close();
    parent?.file.close();
  }
}

async function writeAll(f: Deno.FsFile, buf: Uint8Array): Promise<void> {
  let done = 0;
  while (done < buf.length) done += await f.write(buf.subarray(done));
}

/**
 * Makes the full dump in `dir` incremental against the full dump in
 * `parentDir`, in place: pages with the same bytes at the same address in
 * the parent become `PE_PARENT` holes and leave the pages images. The caller
 * puts `parentDir`'s images at `dir/parent/` before a restore. With
 * `countOnly`, nothing is written: the result says what it would do (the
 * dirty set of `dir` against `parentDir`). With `outDir` (an existing
 * directory), `dir` stays as it is and the incremental image set is written
 * there: its pagemaps and pages images, and every other file of `dir`
 * (hard links where the filesystem allows). Pagemaps named in `skip` are
 * left alone (already made incremental).
 */
export async function dedupAgainstParent(
  dir: string,
  parentDir: string,
  opts: { countOnly?: boolean; outDir?: string; skip?: ReadonlySet<string> } = {},
): Promise<DedupResult> {
  const total: DedupResult = { pages: 0, fromParent: 0, bytes: 0 };
  const written = new Set<string>();
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || !/^pagemap-\d+\.img$/.test(e.name) || opts.skip?.has(e.name)) continue;
    const r = await dedupOne(dir, parentDir, e.name, opts);
    written.add(e.name).add(`pages-${r.pagesId}.img`);
    total.pages += r.pages;
    total.fromParent += r.fromParent;
    total.bytes += r.bytes;
  }
  if (opts.outDir && !opts.countOnly) {
    for await (const e of Deno.readDir(dir)) {
      if (!e.isFile || written.has(e.name)) continue;
      await Deno.link(`${dir}/${e.name}`, `${opts.outDir}/${e.name}`)
        .catch(() => Deno.copyFile(`${dir}/${e.name}`, `${opts.outDir}/${e.name}`));
    }
  }
  return total;
}
