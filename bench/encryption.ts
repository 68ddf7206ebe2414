/**
 * `deno task bench encryption [--mib 256] [--rounds 5]`: what the archive
 * encryption (`storage/encryption.ts`) costs next to a plain copy, on this
 * machine. Per round, in alternating order, on one file of incompressible
 * data in a temp directory on the same disk:
 *
 * - **copy**: the file streamed into another file (what storing a plain
 *   archive on a node costs at least);
 * - **encrypt**: `encryptFile` (the stream the source agent uploads,
 *   `encryptedFileStream`, written to a file here instead of the store and
 *   the registry);
 * - **decrypt**: the encrypted file streamed through `decryptToFile` (the
 *   decryption the target agent runs while its runtime pulls the plain image,
 *   written to a file here).
 *
 * Encrypt and decrypt run once with each AES-GCM engine (`storage/aes_gcm.ts`:
 * OpenSSL's libcrypto, the default where it loads, and WebCrypto).
 * Prints min/median/max seconds and MiB/s of each, the ratios to copy and
 * OpenSSL's to WebCrypto's (medians of per-round ratios), and the bench
 * process's peak RSS growth over all runs, collector lag included (200-240
 * MiB with `--mib 256` here on 2026-11-30; one pass's memory is bounded by
 * storage/encryption_test.ts: 512 MiB through encrypt and decrypt).
 * @module
 */
import { parseArgs } from "../base/args.ts";
import {
  type AesGcmEngine,
  decryptToFile,
  encryptFile,
  importEncryptionKey,
  type KeyRing,
  libcrypto,
} from "../storage/mod.ts";
import { parsePositiveInts, roundOrder } from "./_stats.ts";

const SIDES = [
  "copy",
  "encrypt openssl",
  "encrypt webcrypto",
  "decrypt openssl",
  "decrypt webcrypto",
] as const;
type Side = typeof SIDES[number];

async function writeData(path: string, mib: number): Promise<void> {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  const block = new Uint8Array(1 << 20);
  try {
    for (let i = 0; i < mib; i++) {
      for (let o = 0; o < block.length; o += 65536) {
        crypto.getRandomValues(block.subarray(o, o + 65536));
      }
      await f.write(block);
    }
  } finally {
    f.close();
  }
}

async function copy(src: string, dst: string): Promise<void> {
  const input = await Deno.open(src);
  const output = await Deno.open(dst, { write: true, create: true, truncate: true });
  await input.readable.pipeTo(output.writable);
}

function spread(xs: number[]): { min: number; median: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor(s.length / 2)], max: s[s.length - 1] };
}

/** Runs the benchmark. */
export async function main(args: string[]): Promise<void> {
  const { flags } = parseArgs(args, { known: ["mib", "rounds"] });
  const mib = parsePositiveInts(flags.mib ?? "256", "mib")[0];
  const rounds = parsePositiveInts(flags.rounds ?? "5", "rounds")[0];
  const dir = await Deno.makeTempDir({ prefix: "lpm-bench-enc-" });
  const key = await importEncryptionKey("bench", crypto.getRandomValues(new Uint8Array(32)));
  const ring: KeyRing = { active: key, byId: new Map([[key.id, key]]) };
  const rss0 = Deno.memoryUsage().rss;
  let peak = rss0;
  const lib = libcrypto();
  if (!lib.lib) throw new Error(`OpenSSL's libcrypto.so.3 cannot be used here: ${lib.why}`);
  const times = Object.fromEntries(SIDES.map((s) => [s, [] as number[]])) as Record<
    Side,
    number[]
  >;
  try {
    const src = `${dir}/plain`;
    await writeData(src, mib);
    await encryptFile(src, `${dir}/sealed`, ring); // decrypt's input, and a warm-up
    for (let r = 0; r < rounds; r++) {
      for (const side of roundOrder(r, [...SIDES])) {
        const t0 = performance.now();
        const [what, engine] = side.split(" ") as [string, AesGcmEngine];
        if (what === "copy") await copy(src, `${dir}/out`);
        else if (what === "encrypt") await encryptFile(src, `${dir}/out`, ring, { engine });
        else {
          const sealed = (await Deno.open(`${dir}/sealed`)).readable;
          await decryptToFile(sealed, `${dir}/out`, ring, { engine });
        }
        times[side].push((performance.now() - t0) / 1000);
        peak = Math.max(peak, Deno.memoryUsage().rss);
        await Deno.remove(`${dir}/out`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  console.log(`${mib} MiB, ${rounds} rounds, alternating order; seconds min/median/max, MiB/s:`);
  for (const side of SIDES) {
    const s = spread(times[side]);
    console.log(
      `  ${side.padEnd(18)} ${s.min.toFixed(3)} / ${s.median.toFixed(3)} / ${s.max.toFixed(3)} s` +
        `  ${(mib / s.median).toFixed(0)} MiB/s`,
    );
  }
  const ratio = (a: Side, b: Side) => {
    const s = spread(times[a].map((t, i) => t / times[b][i]));
    console.log(
      `  ${a} / ${b}: median ${s.median.toFixed(2)} (min ${s.min.toFixed(2)}, max ${
        s.max.toFixed(2)
      })`,
    );
  };
  for (const side of SIDES.slice(1)) ratio(side, "copy");
  ratio("encrypt openssl", "encrypt webcrypto");
  ratio("decrypt openssl", "decrypt webcrypto");
  console.log(`  peak RSS growth: ${((peak - rss0) / 2 ** 20).toFixed(0)} MiB`);
}
