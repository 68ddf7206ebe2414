/**
 * `deno task bench storage [--size-mib N] [--rounds N] [--providers local,pvc,s3,minio]
 * [--paths file,stream]`: write and read throughput of each storage provider
 * for one object (default 1 GiB), as a ratio to a raw baseline measured in the
 * same run on the same machine, interleaved with it. Two paths per provider:
 * `file` (`storeFile`/`fetchToFile`: how the agent stores a checkpoint archive,
 * which is a file on the node, and reads one back; filesystem stores copy in
 * the kernel and hash alongside) and `stream` (`put`/`get` of a stream).
 *
 * Fairness rules:
 * - Filesystems (`local`, `pvc`): the baseline write is `cp src dst && sync dst`
 *   (our put fsyncs its data, so the baseline pays for durability too); the
 *   baseline read is `cp dst back && sync back`, and our read streams the object
 *   into a file that is then synced the same way. Both writes copy the same
 *   source file and both reads read a file written moments before in the same
 *   round, so the page cache helps both equally.
 * - S3 (`s3`, `minio`): the baseline is `curl --aws-sigv4` PUT of the same
 *   source file and GET into a file, against the same MinIO.
 * - Every round runs baseline and subject back to back, alternating which goes
 *   first, and a global `sync` (untimed) precedes every timed step so no step
 *   pays for the previous one's dirty pages. Each round gives one ratio.
 * - Order matters on this VM: its disk absorbs the first GiB written after a
 *   pause much faster than the second (a host-side cache), so whichever step
 *   of a pair runs first is favoured, by up to 3-4x. The rounds are therefore
 *   made even (each order equally often) and the table shows the geometric
 *   mean of the per-round ratios, in which a multiplicative order effect
 *   cancels out (order k: ratios r*k and r/k, mean r), with the min and max.
 *
 * Starts its own MinIO.
 * @module
 */
import { parseArgs } from "../base/args.ts";
import { Sha256Counter } from "../base/sha256.ts";
import { startEnvironment } from "../localenv/mod.ts";
import { createStore, fetchToFile, storeFile } from "../storage/mod.ts";
import type { CheckpointStore } from "../storage/mod.ts";
import { bucketClassSpec, type S3ServerInfo } from "../testing/storage_fixtures.ts";

const MIB = 1 << 20;
const ALL = ["local", "pvc", "s3", "minio"] as const;
type Provider = typeof ALL[number];

async function run(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} failed: ${new TextDecoder().decode(out.stderr)}`);
}

/** Seconds `fn` takes, after an untimed global sync. */
async function timed(fn: () => Promise<void>): Promise<number> {
  await run("sync", []);
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

/** Reads a file as a stream in 4 MiB chunks (how a checkpoint archive reaches put). */
async function fileStream(path: string): Promise<ReadableStream<Uint8Array>> {
  const f = await Deno.open(path);
  return new ReadableStream({
    async pull(c) {
      const buf = new Uint8Array(4 * MIB);
      const n = await f.read(buf);
      if (n === null) {
        f.close();
        c.close();
      } else c.enqueue(buf.subarray(0, n));
    },
    cancel: () => f.close(),
  }, { highWaterMark: 0 });
}

/** Reads a file in 8 MiB chunks and hashes it: the user-space floor of any verified copy. */
async function hashFile(path: string): Promise<void> {
  const f = await Deno.open(path);
  const h = new Sha256Counter();
  const buf = new Uint8Array(8 * MIB);
  for (let n; (n = await f.read(buf)) !== null;) h.update(buf.subarray(0, n));
  f.close();
  h.hex();
}

async function writeTo(path: string, stream: ReadableStream<Uint8Array>): Promise<void> {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  await stream.pipeTo(f.writable);
}

async function removeQuietly(path: string): Promise<void> {
  await Deno.remove(path).catch(() => {});
}

/** How the bytes reach the store: a stream (`put`/`get`) or a file (`storeFile`/`fetchToFile`). */
type Path = "stream" | "file";

/** One provider and path and its baseline, as four timed steps plus cleanup. */
interface Case {
  provider: Provider;
  /** Row name: `<provider>/<path>`. */
  name: string;
  baseline: string;
  target: number;
  baseWrite(): Promise<void>;
  baseRead(): Promise<void>;
  write(): Promise<void>;
  read(): Promise<void>;
  cleanup(): Promise<void>;
  close(): void;
}

interface Samples {
  /** MiB/s of just reading the source and hashing it (sha256, node:crypto) in the same round. */
  hash: number[];
  write: number[];
  read: number[];
  baseWrite: number[];
  baseRead: number[];
}

/** Geometric mean: the estimator that cancels a multiplicative order effect. */
function geomean(xs: number[]): number {
  return Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Entry point for `bench/run.ts`. */
export async function main(args: string[]): Promise<void> {
  const { flags } = parseArgs(args, { known: ["size-mib", "rounds", "providers", "paths"] });
  const sizeMiB = Number(flags["size-mib"] ?? 1024);
  const asked = Number(flags.rounds ?? 4);
  // Even: each order (baseline first, subject first) equally often.
  const rounds = asked + (asked % 2);
  if (rounds !== asked) {
    console.error(`[bench] ${asked} rounds -> ${rounds} (each order equally often)`);
  }
  const providers = (flags.providers ?? ALL.join(",")).split(",") as Provider[];
  const paths = (flags.paths ?? "file,stream").split(",") as Path[];
  for (const p of paths) {
    if (p !== "file" && p !== "stream") throw new Error(`Unknown path "${p}": file or stream`);
  }
  for (const p of providers) {
    if (!ALL.includes(p)) throw new Error(`Unknown provider "${p}": expected one of ${ALL}`);
  }
  const size = sizeMiB * MIB;
  const dir = await Deno.makeTempDir({ prefix: "lpm-bench-storage-" });
  const needS3 = providers.some((p) => p === "s3" || p === "minio");
  const env = needS3
    ? await startEnvironment({
      parts: ["minio"],
      onProgress: (m) => console.error(`[bench] ${m}`),
    })
    : undefined;
  const results = new Map<string, Samples>();
  const cases: Case[] = [];
  try {
    const src = `${dir}/source.bin`;
    console.error(`[bench] writing a ${sizeMiB} MiB source file`);
    await run("sh", ["-c", `head -c ${size} /dev/urandom > ${src} && sync`]);
    for (const p of providers) {
      for (const path of paths) cases.push(makeCase(p, path, dir, src, size, env?.info.minio));
    }
    for (let r = 0; r < rounds; r++) {
      const subjectFirst = r % 2 === 1;
      for (const c of cases) {
        const s = results.get(c.name) ??
          { hash: [], write: [], read: [], baseWrite: [], baseRead: [] };
        results.set(c.name, s);
        const pair = async (
          sub: () => Promise<void>,
          base: () => Promise<void>,
        ): Promise<[number, number]> => {
          if (subjectFirst) {
            const a = await timed(sub);
            return [a, await timed(base)];
          }
          const b = await timed(base);
          return [await timed(sub), b];
        };
        const h = await timed(() => hashFile(src));
        const [w, bw] = await pair(c.write, c.baseWrite);
        const [rd, br] = await pair(c.read, c.baseRead);
        await c.cleanup();
        s.hash.push(sizeMiB / h);
        s.write.push(sizeMiB / w);
        s.baseWrite.push(sizeMiB / bw);
        s.read.push(sizeMiB / rd);
        s.baseRead.push(sizeMiB / br);
        console.error(
          `[bench] round ${r + 1}/${rounds} ${c.name}: write ${(bw / w).toFixed(2)} ` +
            `(${(sizeMiB / w).toFixed(0)} vs ${(sizeMiB / bw).toFixed(0)} MiB/s), read ${
              (br / rd).toFixed(2)
            } (${(sizeMiB / rd).toFixed(0)} vs ${(sizeMiB / br).toFixed(0)} MiB/s)`,
        );
      }
    }
  } finally {
    for (const c of cases) c.close();
    await env?.stop();
    await Deno.remove(dir, { recursive: true });
  }
  printTable(sizeMiB, rounds, cases, results);
}

function printTable(
  sizeMiB: number,
  rounds: number,
  cases: Case[],
  results: Map<string, Samples>,
): void {
  const pad = (s: string, n: number) => s.padEnd(n);
  const f0 = (n: number) => n.toFixed(0);
  const cell = (ratios: number[]) => {
    const med = geomean(ratios);
    return `${med.toFixed(2)} [${Math.min(...ratios).toFixed(2)}-${
      Math.max(...ratios).toFixed(2)
    }]`;
  };
  console.log(
    `storage throughput, ${sizeMiB} MiB object, ${rounds} interleaved rounds ` +
      `(MiB/s are medians; ratio = provider / baseline per round: geometric mean [min-max])`,
  );
  console.log(
    "sha256/base: reading the source and hashing it alone (sha256, node:crypto), " +
      "as a ratio to the write baseline: a ceiling for any store that verifies what it copies " +
      "(cp copies in the kernel with copy_file_range and never touches the bytes)",
  );
  console.log(
    pad("provider/path", 15) + pad("baseline", 12) + pad("write", 7) + pad("base", 7) +
      pad("ratio", 19) + pad("read", 7) + pad("base", 7) + pad("ratio", 19) +
      pad("sha256/base", 12) + "result",
  );
  for (const c of cases) {
    const s = results.get(c.name);
    if (!s || s.write.length === 0) continue;
    const wr = s.write.map((v, i) => v / s.baseWrite[i]);
    const rr = s.read.map((v, i) => v / s.baseRead[i]);
    const ok = (xs: number[]) => geomean(xs) >= c.target;
    const verdict = `${ok(wr) ? "PASS" : "BELOW"} write, ${ok(rr) ? "PASS" : "BELOW"} read ` +
      `(target >= ${c.target})`;
    console.log(
      pad(c.name, 15) + pad(c.baseline, 12) + pad(f0(median(s.write)), 7) +
        pad(f0(median(s.baseWrite)), 7) + pad(cell(wr), 19) + pad(f0(median(s.read)), 7) +
        pad(f0(median(s.baseRead)), 7) + pad(cell(rr), 19) +
        pad(geomean(s.hash.map((v, i) => v / s.baseWrite[i])).toFixed(2), 12) + verdict,
    );
  }
}

function makeCase(
  provider: Provider,
  path: Path,
  dir: string,
  src: string,
  size: number,
  info: S3ServerInfo | undefined,
): Case {
  const name = `${provider}/${path}`;
  const key = "bench/pod/c1/archive.tar";
  const back = `${dir}/back-${provider}.bin`;
  const baseBack = `${dir}/base-back-${provider}.bin`;
  let store: CheckpointStore;
  const write = async () => {
    if (path === "file") await storeFile(store, key, src, { size });
    else await store.put(key, await fileStream(src), { size });
  };
  const readBack = async () => {
    if (path === "file") await fetchToFile(store, key, back);
    else await writeTo(back, await store.get(key));
  };
  if (provider === "local" || provider === "pvc") {
    store = createStore(
      provider === "local"
        ? { provider, local: { path: `${dir}/local` } }
        : { provider, pvc: { claimName: "bench", mountPath: dir, subPath: "pvc" } },
    );
    const baseDst = `${dir}/cp-${provider}.bin`;
    return {
      provider,
      name,
      baseline: "cp+sync",
      target: 0.8,
      baseWrite: () => run("sh", ["-c", `cp ${src} ${baseDst} && sync ${baseDst}`]),
      baseRead: () => run("sh", ["-c", `cp ${baseDst} ${baseBack} && sync ${baseBack}`]),
      write,
      read: async () => {
        await readBack();
        await run("sync", [back]); // same durability as the cp+sync baseline
      },
      cleanup: async () => {
        await store.delete(key);
        for (const p of [baseDst, back, baseBack]) await removeQuietly(p);
      },
      close: () => store.close?.(),
    };
  }
  if (!info) throw new Error(`Provider "${provider}" needs MinIO`);
  const url = `${info.endpoint}/${info.bucket}/bench-curl/${provider}.bin`;
  const auth = [
    "--aws-sigv4",
    "aws:amz:us-east-1:s3",
    "--user",
    `${info.accessKey}:${info.secretKey}`,
  ];
  const { spec, secret } = bucketClassSpec(provider, info, `bench-${provider}/`);
  store = createStore(spec, { secret });
  return {
    provider,
    name,
    baseline: "curl sigv4",
    target: 0.7,
    baseWrite: () => run("curl", ["-sSf", ...auth, "-T", src, url]),
    baseRead: () => run("curl", ["-sSf", ...auth, "-o", baseBack, url]),
    write,
    read: readBack,
    cleanup: async () => {
      await store.delete(key);
      await run("curl", ["-sSf", ...auth, "-X", "DELETE", url]);
      for (const p of [back, baseBack]) await removeQuietly(p);
    },
    close: () => store.close?.(),
  };
}
