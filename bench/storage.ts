/**
 * `deno task bench storage [--size-mib N]`: write and read throughput of each
 * storage provider for one object (default 1 GiB), as a ratio to the raw
 * baseline measured in the same run on the same machine: `cp` + `sync` of the
 * file for the filesystem providers (our put fsyncs too), and
 * `curl --aws-sigv4` PUT/GET of the same file against the same MinIO for
 * `s3` and `minio`. Starts its own MinIO.
 * @module
 */
import { startEnvironment } from "../tests/harness/mod.ts";
import { createStore } from "../storage/mod.ts";
import type { CheckpointStore } from "../storage/mod.ts";
import { bucketClassSpec } from "../storage/_fixtures.ts";

const MIB = 1 << 20;

async function run(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} failed: ${new TextDecoder().decode(out.stderr)}`);
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

/** Reads a file as a stream in 4 MiB chunks. */
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

async function writeTo(path: string, stream: ReadableStream<Uint8Array>): Promise<void> {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  await stream.pipeTo(f.writable);
}

interface Row {
  provider: string;
  baseline: string;
  writeMiBs: number;
  baseWriteMiBs: number;
  readMiBs: number;
  baseReadMiBs: number;
}

/** Entry point for `bench/run.ts`. */
export async function main(args: string[]): Promise<void> {
  const i = args.indexOf("--size-mib");
  const sizeMiB = i >= 0 ? Number(args[i + 1]) : 1024;
  const size = sizeMiB * MIB;
  const dir = await Deno.makeTempDir({ prefix: "lpm-bench-storage-" });
  const env = await startEnvironment({
    parts: ["minio"],
    onProgress: (m) => console.error(`[bench] ${m}`),
  });
  const rows: Row[] = [];
  try {
    const src = `${dir}/source.bin`;
    console.error(`[bench] writing a ${sizeMiB} MiB source file`);
    await run("sh", ["-c", `head -c ${size} /dev/urandom > ${src} && sync`]);
    const mibs = (s: number) => sizeMiB / s;
    const info = env.info.minio!;

    // Filesystems: baseline cp + sync, then each provider.
    for (const provider of ["local", "pvc"] as const) {
      const baseDst = `${dir}/cp-${provider}.bin`;
      const bw = await timed(() => run("sh", ["-c", `cp ${src} ${baseDst} && sync ${baseDst}`]));
      const br = await timed(() =>
        run("sh", ["-c", `cp ${baseDst} ${dir}/cp-back.bin && sync ${dir}/cp-back.bin`])
      );
      await Deno.remove(baseDst);
      await Deno.remove(`${dir}/cp-back.bin`);
      const store = createStore(
        provider === "local"
          ? { provider, local: { path: `${dir}/local` } }
          : { provider, pvc: { claimName: "bench", mountPath: dir, subPath: "pvc" } },
      );
      rows.push(await measure(store, provider, "cp+sync", src, `${dir}/back.bin`, mibs, bw, br));
    }

    // S3: baseline curl PUT/GET, then each client.
    for (const provider of ["s3", "minio"] as const) {
      const url = `${info.endpoint}/${info.bucket}/bench-curl/${provider}.bin`;
      const auth = [
        "--aws-sigv4",
        "aws:amz:us-east-1:s3",
        "--user",
        `${info.accessKey}:${info.secretKey}`,
      ];
      const bw = await timed(() => run("curl", ["-sSf", ...auth, "-T", src, url]));
      const br = await timed(() =>
        run("curl", ["-sSf", ...auth, "-o", `${dir}/curl-back.bin`, url])
      );
      await Deno.remove(`${dir}/curl-back.bin`);
      await run("curl", ["-sSf", ...auth, "-X", "DELETE", url]);
      const { spec, secret } = bucketClassSpec(provider, info, `bench-${provider}/`);
      const store = createStore(spec, { secret });
      rows.push(await measure(store, provider, "curl sigv4", src, `${dir}/back.bin`, mibs, bw, br));
    }
  } finally {
    await env.stop();
    await Deno.remove(dir, { recursive: true });
  }
  const pad = (s: string, n: number) => s.padEnd(n);
  const f = (n: number) => n.toFixed(0);
  console.log(
    `storage throughput, ${sizeMiB} MiB object (MiB/s; ratio = provider / baseline in this run)`,
  );
  console.log(
    `${pad("provider", 9)}${pad("baseline", 12)}${pad("write", 8)}${pad("base", 8)}${
      pad("ratio", 8)
    }${pad("read", 8)}${pad("base", 8)}ratio  target`,
  );
  for (const r of rows) {
    const target = r.provider === "local" || r.provider === "pvc" ? 0.8 : 0.7;
    const wr = r.writeMiBs / r.baseWriteMiBs;
    const rr = r.readMiBs / r.baseReadMiBs;
    console.log(
      `${pad(r.provider, 9)}${pad(r.baseline, 12)}${pad(f(r.writeMiBs), 8)}${
        pad(f(r.baseWriteMiBs), 8)
      }${pad(wr.toFixed(2), 8)}${pad(f(r.readMiBs), 8)}${pad(f(r.baseReadMiBs), 8)}${
        pad(rr.toFixed(2), 7)
      }>=${target}${wr >= target && rr >= target ? "" : "  (below)"}`,
    );
  }
}

async function measure(
  store: CheckpointStore,
  provider: string,
  baseline: string,
  src: string,
  back: string,
  mibs: (s: number) => number,
  baseWriteS: number,
  baseReadS: number,
): Promise<Row> {
  console.error(`[bench] ${provider}`);
  const key = "bench/pod/c1/archive.tar";
  const w = await timed(async () => {
    await store.put(key, await fileStream(src));
  });
  const r = await timed(async () => {
    await writeTo(back, await store.get(key));
    if (provider === "local" || provider === "pvc") {
      await run("sync", [back]); // same durability as the cp+sync baseline
    }
  });
  await Deno.remove(back);
  await store.delete(key);
  store.close?.();
  return {
    provider,
    baseline,
    writeMiBs: mibs(w),
    baseWriteMiBs: mibs(baseWriteS),
    readMiBs: mibs(r),
    baseReadMiBs: mibs(baseReadS),
  };
}
