/**
 * `deno task bench agent [--size-mib N]`: the agent pipeline's throughput from
 * "checkpoint ended" to "stored" (archive streamed to the store with its
 * sha256, checkpoint image pushed to the registry by digest, metadata, tag,
 * local archive removed), as a ratio to a raw `cp` + `sync` of the same
 * archive on this machine, measured in the same run. The archive is random
 * data (incompressible, like CRIU page images mostly are).
 * @module
 */
import { parseArgs } from "../base/args.ts";
import { startEnvironment } from "../localenv/mod.ts";
import { createImagePublisher } from "../agent/image_push.ts";
import { createOciImagePublisher } from "../agent/image_oci.ts";
import type { ImagePublisher } from "../agent/pipeline.ts";
import { runCheckpoint } from "../agent/pipeline.ts";
import type { RuntimeDriver } from "../agent/runtime/driver.ts";
import { createStore } from "../storage/mod.ts";

const MIB = 1024 * 1024;

async function sh(cmd: string): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command("sh", { args: ["-c", cmd], stderr: "piped" }).output();
  if (!out.success) throw new Error(`"${cmd}" failed: ${new TextDecoder().decode(out.stderr)}`);
  return (performance.now() - t0) / 1000;
}

/** A driver whose "checkpoint" is an archive already on disk: only the pipeline is timed. */
function readyArchive(path: string): RuntimeDriver {
  return {
    name: "bench",
    checkpoint: () => Promise.resolve({ archivePath: path, runtime: { name: "bench" } }),
  };
}

/** Runs the benchmark and prints a table. */
export async function main(args: string[]): Promise<void> {
  const { flags } = parseArgs(args, { known: ["size-mib"] });
  const sizeMiB = Number(flags["size-mib"] ?? 512);
  const dir = await Deno.makeTempDir({ prefix: "lpm-bench-agent-" });
  const env = await startEnvironment({
    parts: ["minio", "registry"],
    onProgress: (m) => console.error(`[bench] ${m}`),
  });
  try {
    const src = `${dir}/archive.tar`;
    console.error(`[bench] writing a ${sizeMiB} MiB archive`);
    await sh(`head -c ${sizeMiB * MIB} /dev/urandom > ${src} && sync`);
    const m = env.info.minio!;
    const classes = {
      minio: {
        provider: "minio" as const,
        minio: { endpoint: m.endpoint, bucket: m.bucket, region: m.region, prefix: "bench" },
        credentialsSecretRef: { name: "x", namespace: "x" },
      },
      local: { provider: "local" as const, local: { path: `${dir}/store` } },
    };
    const secret = { accessKeyId: m.accessKey, secretAccessKey: m.secretKey };
    const rows: string[] = [];
    const cpSeconds: number[] = [];
    for (const [name, spec] of Object.entries(classes)) {
      const variants: [string, ImagePublisher | undefined][] = [
        ["", undefined],
        [" + registry (streamed)", createImagePublisher()],
        [" + registry (oci gzip)", createOciImagePublisher({ compression: "gzip" })],
      ];
      for (const [label, publisher] of variants) {
        const withImage = publisher !== undefined;
        const copy = `${dir}/run.tar`;
        // The copy the run consumes doubles as the baseline: cp + sync of the same archive.
        const cpS = await sh(`cp ${src} ${copy} && sync`);
        cpSeconds.push(cpS);
        // A fresh first block per run: the registry must not find the layer already there.
        await sh(`head -c 4096 /dev/urandom | dd of=${copy} conv=notrunc status=none && sync`);
        const { timings } = await runCheckpoint({
          operationId: `bench-${name}-${Date.now()}`,
          namespace: "bench",
          pod: "bench",
          container: "app",
        }, {
          driver: readyArchive(copy),
          resolveClass: () =>
            Promise.resolve({
              name,
              store: createStore(spec, { secret }),
              registry: withImage
                ? { repository: `${env.info.registry!.host}/bench/checkpoints`, insecure: true }
                : undefined,
            }),
          images: publisher,
          workDir: `${dir}/work`,
          keptDir: `${dir}/kept`,
          report: () => Promise.resolve(),
          agent: { nodeName: "bench", version: "bench" },
        });
        const s = timings.publishMs / 1000;
        const cpMiBs = sizeMiB / cpS;
        const mibs = sizeMiB / s;
        rows.push(
          `${(name + label).padEnd(30)} ${mibs.toFixed(0).padStart(6)} MiB/s   cp+sync ${
            cpMiBs.toFixed(0).padStart(6)
          } MiB/s   ratio ${(mibs / cpMiBs).toFixed(2)}`,
        );
      }
    }
    console.log(`agent pipeline, ${sizeMiB} MiB archive, checkpoint end -> stored:`);
    for (const r of rows) console.log(`  ${r}`);
  } finally {
    await env.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await main(Deno.args);
