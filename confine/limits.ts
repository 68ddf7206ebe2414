/**
 * Size bounds for outside data: how much may be read into memory, inflated
 * from a compressed stream, or accepted as one archive member.
 * @module
 */
import { ConfinementError } from "./path.ts";

const MiB = 1 << 20;
const GiB = 1 << 30;

/**
 * Default bounds. Checkpoints are memory dumps of up to tens of GiB, so the
 * stream limits are generous; what is read into memory is small.
 */
export const LIMITS = {
  /** One tar member (a CRIU pages image can be tens of GiB). */
  entryBytes: 64 * GiB,
  /** A member read into memory (`config.dump`, `spec.dump`, `deleted.files`, `stats-dump`). */
  metadataBytes: 16 * MiB,
  /** A pax extended header or a GNU long name. */
  headerBytes: 1 * MiB,
  /** Everything a decompressed stream may produce. */
  inflatedBytes: 64 * GiB,
  /**
   * Output per input byte of a decompressed stream. Deflate cannot exceed
   * about 1032:1, so for gzip this only backs the absolute limit; zstd and
   * nested bombs go far beyond it.
   */
  inflateRatio: 1100,
  /** A manifest, index or image config (distribution caps manifests at 4 MiB). */
  manifestBytes: 4 * MiB,
  /** A checkpoint metadata document (it carries a pod spec). */
  jsonBytes: 8 * MiB,
} as const;

/** Bounds of {@linkcode boundedInflate}. */
export interface InflateLimits {
  /** Most bytes the decompressed stream may produce (default {@linkcode LIMITS}.inflatedBytes). */
  maxBytes?: number;
  /** Most output bytes per input byte (default {@linkcode LIMITS}.inflateRatio). */
  maxRatio?: number;
  /** Names the stream in messages. */
  what: string;
}

/** Input is fed to the decompressor in slices this big, so one slice inflates to at most ~17 MiB. */
const SLICE = 16 * 1024;
/** The ratio is checked once the output passed this (headers and tiny streams skew it). */
const RATIO_FLOOR = 1 * MiB;

/**
 * Decompresses `input` with `inflate`, failing with a {@linkcode ConfinementError}
 * as soon as the output passes `maxBytes` or `maxRatio` times the input read
 * so far. The input is sliced small so a bomb never inflates into one huge
 * chunk.
 */
export function boundedInflate(
  input: ReadableStream<Uint8Array>,
  inflate: (s: ReadableStream<Uint8Array>) => ReadableStream<Uint8Array>,
  limits: InflateLimits,
): ReadableStream<Uint8Array> {
  const maxBytes = limits.maxBytes ?? LIMITS.inflatedBytes;
  const maxRatio = limits.maxRatio ?? LIMITS.inflateRatio;
  let inBytes = 0;
  let outBytes = 0;
  const sliced = input.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, ctl) {
        for (let i = 0; i < chunk.length; i += SLICE) {
          const part = chunk.subarray(i, i + SLICE);
          inBytes += part.length;
          ctl.enqueue(part);
        }
      },
    }),
  );
  return inflate(sliced).pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, ctl) {
        outBytes += chunk.length;
        if (outBytes > maxBytes) {
          throw new ConfinementError(
            `Refusing ${limits.what}: it decompresses to more than ${maxBytes} bytes`,
          );
        }
        if (outBytes > RATIO_FLOOR && outBytes > maxRatio * inBytes) {
          throw new ConfinementError(
            `Refusing ${limits.what}: it decompresses to more than ${maxRatio} times its ` +
              `size (${outBytes} bytes from ${inBytes}; a decompression bomb?)`,
          );
        }
        ctl.enqueue(chunk);
      },
    }),
  );
}

/** Passes `stream` on, failing once more than `maxBytes` went through. */
export function limitStream(
  stream: ReadableStream<Uint8Array>,
  maxBytes: number,
  what: string,
): ReadableStream<Uint8Array> {
  let n = 0;
  return stream.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, ctl) {
        n += chunk.length;
        if (n > maxBytes) {
          throw new ConfinementError(`Refusing ${what}: it is larger than ${maxBytes} bytes`);
        }
        ctl.enqueue(chunk);
      },
    }),
  );
}

/**
 * Reads a whole stream into memory, refusing more than `maxBytes` (the
 * rest is cancelled, never buffered). Chunks are joined once, at the end.
 */
export async function readBounded(
  stream: ReadableStream<Uint8Array>,
  maxBytes: number,
  what: string,
): Promise<Uint8Array<ArrayBuffer>> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      n += value.length;
      if (n > maxBytes) {
        throw new ConfinementError(`Refusing ${what}: it is larger than ${maxBytes} bytes`);
      }
      chunks.push(value);
    }
  } catch (err) {
    await reader.cancel().catch(() => {});
    throw err;
  }
  const out = new Uint8Array(n);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}
