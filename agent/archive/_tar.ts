/**
 * A streaming tar reader (ustar, pax and GNU long names): enough to list a
 * checkpoint archive and read its small JSON and stats entries without
 * unpacking it. Large entries are skipped without being held in memory.
 * @module
 */

/** One tar entry. */
export interface TarEntry {
  /** Path inside the archive, without a leading `./`. */
  name: string;
  /** `file`, `dir`, `symlink`, `link` or `other`. */
  type: "file" | "dir" | "symlink" | "link" | "other";
  /** Content size in bytes. */
  size: number;
  /** Permission bits. */
  mode: number;
  /** Reads the content (only while this entry is current). */
  bytes(): Promise<Uint8Array>;
}

/** Where tar bytes come from. */
interface Source {
  read(n: number): Promise<Uint8Array | undefined>;
  skip(n: number): Promise<void>;
  cancel(): Promise<void>;
}

/** A seekable file: skipped entry data is never read. */
class FileSource implements Source {
  #pos = 0;
  constructor(private file: Deno.FsFile, private size: number) {}
  async read(n: number): Promise<Uint8Array | undefined> {
    if (this.#pos >= this.size) return undefined;
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      const k = await this.file.read(out.subarray(got));
      if (k === null) break;
      got += k;
    }
    this.#pos += got;
    if (got < n) throw new Error(`Truncated tar stream: wanted ${n} bytes, got ${got}`);
    return out;
  }
  async skip(n: number): Promise<void> {
    if (this.#pos + n > this.size) {
      throw new Error(`Truncated tar stream: ${this.#pos + n - this.size} bytes missing`);
    }
    this.#pos += n;
    await this.file.seek(this.#pos, Deno.SeekMode.Start);
  }
  cancel(): Promise<void> {
    this.file.close();
    return Promise.resolve();
  }
}

class Reader implements Source {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #buf: Uint8Array = new Uint8Array(0);
  #off = 0;
  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }
  async #fill(n: number): Promise<boolean> {
    while (this.#buf.length - this.#off < n) {
      const { value, done } = await this.#reader.read();
      if (done) return false;
      const rest = this.#buf.subarray(this.#off);
      const next = new Uint8Array(rest.length + value.length);
      next.set(rest);
      next.set(value, rest.length);
      this.#buf = next;
      this.#off = 0;
    }
    return true;
  }
  /** Exactly `n` bytes, or undefined at a clean end of stream. */
  async read(n: number): Promise<Uint8Array | undefined> {
    if (!(await this.#fill(n))) {
      if (this.#buf.length - this.#off === 0) return undefined;
      throw new Error(
        `Truncated tar stream: wanted ${n} bytes, got ${this.#buf.length - this.#off}`,
      );
    }
    const out = this.#buf.slice(this.#off, this.#off + n);
    this.#off += n;
    return out;
  }
  async skip(n: number): Promise<void> {
    while (n > 0) {
      const have = this.#buf.length - this.#off;
      if (have > 0) {
        const k = Math.min(have, n);
        this.#off += k;
        n -= k;
        continue;
      }
      const { value, done } = await this.#reader.read();
      if (done) throw new Error(`Truncated tar stream: ${n} bytes missing`);
      this.#buf = value;
      this.#off = 0;
    }
  }
  cancel(): Promise<void> {
    return this.#reader.cancel();
  }
}

const dec = new TextDecoder();

function cstr(b: Uint8Array, start: number, len: number): string {
  const s = b.subarray(start, start + len);
  const z = s.indexOf(0);
  return dec.decode(z < 0 ? s : s.subarray(0, z));
}

function octal(b: Uint8Array, start: number, len: number): number {
  if (b[start] & 0x80) {
    // GNU base-256 for sizes >= 8 GiB.
    let v = b[start] & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[start + i];
    return v;
  }
  const s = cstr(b, start, len).trim();
  return s ? parseInt(s, 8) : 0;
}

function parsePax(b: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < b.length) {
    const sp = b.indexOf(0x20, i);
    if (sp < 0) break;
    const len = parseInt(dec.decode(b.subarray(i, sp)), 10);
    if (!len) break;
    const rec = dec.decode(b.subarray(sp + 1, i + len - 1));
    const eq = rec.indexOf("=");
    out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

function pad(n: number): number {
  return (512 - (n % 512)) % 512;
}

/** Iterates the entries of a tar stream; throws on a truncated or corrupt stream. */
export function tarEntries(stream: ReadableStream<Uint8Array>): AsyncGenerator<TarEntry> {
  return entries(new Reader(stream));
}

/** Iterates the entries of an uncompressed tar file, seeking over entry data. */
export async function tarFileEntries(path: string): Promise<AsyncGenerator<TarEntry>> {
  const file = await Deno.open(path);
  const size = (await file.stat()).size;
  return entries(new FileSource(file, size));
}

async function* entries(r: Source): AsyncGenerator<TarEntry> {
  let longName: string | undefined;
  let pax: Record<string, string> = {};
  try {
    while (true) {
      const h = await r.read(512);
      if (!h || h.every((x) => x === 0)) return;
      let sum = 0;
      for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i];
      if (sum !== octal(h, 148, 8)) throw new Error("Corrupt tar stream: header checksum mismatch");
      const flag = String.fromCharCode(h[156] || 48);
      let size = octal(h, 124, 12);
      if (flag === "x" || flag === "L" || flag === "g") {
        const data = (await r.read(size)) ?? new Uint8Array();
        await r.skip(pad(size));
        if (flag === "x") pax = parsePax(data);
        if (flag === "L") longName = cstr(data, 0, data.length);
        continue;
      }
      if (flag === "K") {
        await r.skip(size + pad(size));
        continue;
      }
      const prefix = dec.decode(h.subarray(257, 262)) === "ustar" ? cstr(h, 345, 155) : "";
      let name = pax.path ?? longName ??
        (prefix ? `${prefix}/${cstr(h, 0, 100)}` : cstr(h, 0, 100));
      if (pax.size) size = Number(pax.size);
      pax = {};
      longName = undefined;
      name = name.replace(/^\.\//, "").replace(/\/$/, "");
      const type = flag === "0" || flag === "7"
        ? "file"
        : flag === "5"
        ? "dir"
        : flag === "2"
        ? "symlink"
        : flag === "1"
        ? "link"
        : "other";
      const dataSize = type === "dir" || type === "symlink" || type === "link" ? 0 : size;
      let consumed = false;
      const entry: TarEntry = {
        name,
        type,
        size: dataSize,
        mode: octal(h, 100, 8),
        bytes: async () => {
          if (consumed) throw new Error(`Tar entry "${name}" was already read`);
          consumed = true;
          return (await r.read(dataSize)) ?? new Uint8Array();
        },
      };
      yield entry;
      if (!consumed) await r.skip(dataSize);
      await r.skip(pad(dataSize));
    }
  } finally {
    await r.cancel().catch(() => {});
  }
}
