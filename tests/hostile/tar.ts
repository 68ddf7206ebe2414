/**
 * A tar writer for hostile inputs: every header field can be given raw, so
 * the corpus can say what honest writers never do (negative, huge or
 * non-numeric sizes, `..` names, links out, devices, truncation). Archives
 * are built in code by the tests; no binary blobs are committed.
 * @module
 */

const enc = new TextEncoder();

/** One member as written. */
export interface RawMember {
  /** Name field (split into prefix/name only when `prefix` is given). */
  name: string;
  /** Type flag: "0" file, "1" hard link, "2" symlink, "3" char, "5" dir, "6" FIFO, "x" pax... */
  type?: string;
  /** Content. */
  data?: Uint8Array | string;
  /** Raw size field (12 bytes); default the octal length of `data`. */
  sizeField?: Uint8Array | string;
  /** Link target. */
  linkname?: string;
  /** Permission bits (default 0644, 0755 for dirs). */
  mode?: number;
}

function put(h: Uint8Array, off: number, len: number, v: Uint8Array | string): void {
  const b = typeof v === "string" ? enc.encode(v) : v;
  h.set(b.subarray(0, len), off);
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, "0") + "\0";
}

/** A 512-byte ustar header with a correct checksum. */
export function header(m: RawMember): Uint8Array {
  const h = new Uint8Array(512);
  const type = m.type ?? "0";
  const data = typeof m.data === "string" ? enc.encode(m.data) : m.data ?? new Uint8Array();
  put(h, 0, 100, m.name);
  put(h, 100, 8, octal(m.mode ?? (type === "5" ? 0o755 : 0o644), 8));
  put(h, 108, 8, octal(0, 8));
  put(h, 116, 8, octal(0, 8));
  put(h, 124, 12, m.sizeField ?? octal(data.length, 12));
  put(h, 136, 12, octal(1_700_000_000, 12));
  h[156] = type.charCodeAt(0);
  if (m.linkname) put(h, 157, 100, m.linkname);
  put(h, 257, 6, "ustar\0");
  put(h, 263, 2, "00");
  put(h, 329, 8, octal(0, 8));
  put(h, 337, 8, octal(0, 8));
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of h) sum += x;
  put(h, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return h;
}

/** A pax extended header member carrying `records` (key, value). */
export function pax(records: [string, string][], raw?: string): RawMember {
  const body = raw ?? records.map(([k, v]) => {
    const rest = ` ${k}=${v}\n`;
    let len = rest.length + 1;
    while (String(len).length + rest.length !== len) len = String(len).length + rest.length;
    return `${len}${rest}`;
  }).join("");
  return { name: "PaxHeader", type: "x", data: body };
}

/** Member bytes: header, data, padding (data omitted past `truncateAt`). */
function memberBytes(m: RawMember): Uint8Array[] {
  const data = typeof m.data === "string" ? enc.encode(m.data) : m.data ?? new Uint8Array();
  const padded = new Uint8Array(Math.ceil(data.length / 512) * 512);
  padded.set(data);
  return [header(m), padded];
}

/** A whole tar: members, then two zero blocks (or cut after `truncateTo` bytes). */
export function tar(
  members: RawMember[],
  opts: { truncateTo?: number } = {},
): Uint8Array<ArrayBuffer> {
  const parts = members.flatMap(memberBytes);
  parts.push(new Uint8Array(1024));
  const len = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(len);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return opts.truncateTo === undefined ? out : out.slice(0, opts.truncateTo);
}

/** The members every valid checkpoint archive has (config, spec, CRIU inventory). */
export function checkpointBase(): RawMember[] {
  return [
    {
      name: "config.dump",
      data: JSON.stringify({ id: "abc", name: "app", createdTime: "2026-01-01T00:00:00Z" }),
    },
    { name: "spec.dump", data: JSON.stringify({ process: { args: ["sh"] } }) },
    { name: "checkpoint", type: "5" },
    { name: "checkpoint/inventory.img", data: new Uint8Array(86) },
  ];
}

/** gzip of `bytes` (built-in CompressionStream). */
export async function gzip(bytes: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  const s = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

/** gzip of `n` zero bytes, streamed (a decompression bomb: ~1000:1). */
export async function gzipZeros(n: number): Promise<Uint8Array<ArrayBuffer>> {
  const chunk = new Uint8Array(1 << 20);
  let left = n;
  const src = new ReadableStream<Uint8Array>({
    pull(ctl) {
      if (left <= 0) return ctl.close();
      const k = Math.min(left, chunk.length);
      left -= k;
      ctl.enqueue(chunk.subarray(0, k));
    },
  });
  const s = src.pipeThrough(
    new CompressionStream("gzip") as TransformStream<Uint8Array, Uint8Array>,
  );
  return new Uint8Array(await new Response(s).arrayBuffer());
}
