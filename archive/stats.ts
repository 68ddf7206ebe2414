/**
 * CRIU's `stats-dump` image: two magics (`IMG_SERVICE`, `STATS`), then
 * entries of a little-endian u32 length and a `StatsEntry` protobuf whose
 * field 1 is the `DumpStatsEntry` (times in microseconds, page counts).
 * Decoded by hand: only varints and one nested message are involved.
 * @module
 */

/** CRIU dump statistics (times in microseconds). */
export type CriuStats = {
  /** Time to freeze the tasks. */
  freezingTime: number;
  /** Time the tasks stayed frozen. */
  frozenTime: number;
  /** Time to dump memory. */
  memdumpTime: number;
  /** Time to write memory pages. */
  memwriteTime: number;
  /** Pages scanned. */
  pagesScanned: number;
  /** Pages skipped because the parent checkpoint had them. */
  pagesSkippedParent: number;
  /** Pages written. */
  pagesWritten: number;
  /** Other numeric fields present in the entry, by CRIU's name. */
  [extra: string]: number;
};

const IMG_SERVICE = 0x55105940;
const IMG_COMMON = 0x54564319;
const STATS_MAGIC = 0x57093306;

const FIELDS: Record<number, string> = {
  1: "freezingTime",
  2: "frozenTime",
  3: "memdumpTime",
  4: "memwriteTime",
  5: "pagesScanned",
  6: "pagesSkippedParent",
  7: "pagesWritten",
  8: "irmapResolve",
  9: "pagesLazy",
  10: "pagePipes",
  11: "pagePipeBufs",
  12: "shpagesScanned",
  13: "shpagesSkippedParent",
  14: "shpagesWritten",
};

function varint(b: Uint8Array, pos: number): [number, number] {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= b.length) throw new Error("Truncated protobuf varint");
    const x = b[pos++];
    v += (x & 0x7f) * mul;
    mul *= 128;
    if (!(x & 0x80)) return [v, pos];
  }
  throw new Error("Protobuf varint longer than 10 bytes");
}

/** Walks a protobuf message, calling `on(field, wireType, value | bytes)`. */
function walk(
  b: Uint8Array,
  on: (field: number, value: number | Uint8Array) => void,
): void {
  let pos = 0;
  while (pos < b.length) {
    const [key, p1] = varint(b, pos);
    pos = p1;
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) {
      const [v, p2] = varint(b, pos);
      pos = p2;
      on(field, v);
    } else if (wire === 2) {
      const [len, p2] = varint(b, pos);
      if (p2 + len > b.length) throw new Error("Truncated protobuf field");
      on(field, b.subarray(p2, p2 + len));
      pos = p2 + len;
    } else if (wire === 5) {
      pos += 4;
    } else if (wire === 1) {
      pos += 8;
    } else {
      throw new Error(`Unsupported protobuf wire type ${wire}`);
    }
  }
}

/**
 * Decodes a CRIU `stats-dump` file. Returns undefined when the file holds
 * restore statistics only; throws when it is not a CRIU stats image.
 */
export function parseCriuStats(bytes: Uint8Array): CriuStats | undefined {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 8) throw new Error(`CRIU stats image too short (${bytes.length} bytes)`);
  let pos = 0;
  let magic = dv.getUint32(0, true);
  if (magic === IMG_SERVICE || magic === IMG_COMMON) {
    magic = dv.getUint32(4, true);
    pos = 8;
  } else {
    pos = 4;
  }
  if (magic !== STATS_MAGIC) {
    throw new Error(`Not a CRIU stats image: magic 0x${magic.toString(16)}`);
  }
  let out: CriuStats | undefined;
  while (pos + 4 <= bytes.length) {
    const len = dv.getUint32(pos, true);
    pos += 4;
    if (pos + len > bytes.length) throw new Error("Truncated CRIU stats entry");
    walk(bytes.subarray(pos, pos + len), (field, value) => {
      if (field !== 1 || !(value instanceof Uint8Array)) return;
      const s: Record<string, number> = {
        freezingTime: 0,
        frozenTime: 0,
        memdumpTime: 0,
        memwriteTime: 0,
        pagesScanned: 0,
        pagesSkippedParent: 0,
        pagesWritten: 0,
      };
      walk(value, (f, v) => {
        if (typeof v === "number") s[FIELDS[f] ?? `field${f}`] = v;
      });
      out = s as CriuStats;
    });
    pos += len;
  }
  return out;
}

/** Encodes dump statistics as CRIU does (for tests and fixtures). */
export function encodeCriuStats(stats: Partial<CriuStats>): Uint8Array {
  const names = Object.entries(FIELDS);
  const inner: number[] = [];
  const put = (v: number) => {
    do {
      let x = v % 128;
      v = Math.floor(v / 128);
      if (v > 0) x |= 0x80;
      inner.push(x);
    } while (v > 0);
  };
  for (const [num, name] of names) {
    const v = stats[name];
    if (v === undefined) continue;
    put(Number(num) * 8);
    put(v);
  }
  const outer: number[] = [0x0a];
  let n = inner.length;
  do {
    let x = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) x |= 0x80;
    outer.push(x);
  } while (n > 0);
  outer.push(...inner);
  const buf = new Uint8Array(12 + outer.length);
  const dv = new DataView(buf.buffer);
  dv.setUint32(0, IMG_SERVICE, true);
  dv.setUint32(4, STATS_MAGIC, true);
  dv.setUint32(8, outer.length, true);
  buf.set(outer, 12);
  return buf;
}
