/**
 * `deno task bench oci [--mib 1024]`: OCI checkpoint image throughput, each
 * figure side by side with a reference run on the same data in the same run,
 * against a private local registry:
 *   (a) push and pull of an already-built checkpoint image vs `skopeo copy`
 *       between the same OCI layout and the registry (ratio >= 1: not slower);
 *   (b) building the image from the archive (compression included) vs
 *       `tar | gzip` and `tar | zstd` of the same archive.
 * @module
 */
import { parseArgs } from "../base/args.ts";
import { startEnvironment } from "../localenv/mod.ts";
import { buildCheckpointImage, pullImage, pushImage } from "../oci/mod.ts";

async function sh(script: string): Promise<void> {
  const out = await new Deno.Command("bash", { args: ["-c", script], stderr: "piped" }).output();
  if (!out.success) throw new Error(`${script}: ${new TextDecoder().decode(out.stderr)}`);
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

/**
 * A checkpoint-like archive: `pages-1.img` of `mib` MiB where half the 4 KiB
 * pages are random and half are repetitive (as process memory tends to be).
 */
async function makeArchive(dir: string, mib: number): Promise<string> {
  const s = `${dir}/stage`;
  await Deno.mkdir(`${s}/checkpoint`, { recursive: true });
  await Deno.writeTextFile(
    `${s}/config.dump`,
    JSON.stringify({ id: "bench", name: "bench", createdTime: new Date().toISOString() }),
  );
  await Deno.writeTextFile(`${s}/spec.dump`, "{}");
  await Deno.writeFile(`${s}/checkpoint/inventory.img`, new Uint8Array(86));
  const f = await Deno.open(`${s}/checkpoint/pages-1.img`, { write: true, create: true });
  const text = new TextEncoder().encode("counter=12345 key=value lpm checkpoint page filler; ");
  const chunk = new Uint8Array(1 << 20);
  for (let i = 0; i < mib; i++) {
    for (let p = 0; p < chunk.length; p += 4096) {
      if ((p / 4096 + i) % 2 === 0) crypto.getRandomValues(chunk.subarray(p, p + 4096));
      else for (let k = 0; k < 4096; k++) chunk[p + k] = text[(k + i) % text.length];
    }
    await f.write(chunk);
  }
  f.close();
  const out = `${dir}/archive.tar`;
  await sh(`tar -C ${s} -cf ${out} config.dump spec.dump checkpoint && rm -rf ${s}`);
  return out;
}

function row(what: string, ours: number, ref: number, refName: string, mib: number): string[] {
  return [
    what,
    `${ours.toFixed(2)} s (${(mib / ours).toFixed(0)} MiB/s)`,
    `${refName}: ${ref.toFixed(2)} s`,
    (ref / ours).toFixed(2),
  ];
}

/** Runs the benchmark. */
export async function main(args: string[]): Promise<void> {
  const { flags } = parseArgs(args, { known: ["mib"] });
  const mib = Number(flags.mib ?? 1024);
  const dir = await Deno.makeTempDir({ prefix: "lpm-bench-oci-" });
  const env = await startEnvironment({ parts: ["registry"] });
  const host = env.info.registry!.host;
  const rows: string[][] = [];
  try {
    console.error(`[bench oci] building a ${mib} MiB archive in ${dir}`);
    const archive = await makeArchive(dir, mib);
    await sh(`cat ${archive} > /dev/null`); // warm the page cache for both sides

    // (b) build vs tar | gzip / tar | zstd
    const refGzip = await time(() =>
      sh(`tar -C ${dir} -cf - archive.tar | gzip -6 > ${dir}/ref.tgz`)
    );
    let img = await buildCheckpointImage(archive, {
      layoutDir: `${dir}/layout-gzip`,
      skipValidation: false,
    });
    const tGzip = await time(async () => {
      await Deno.remove(`${dir}/layout-gzip`, { recursive: true });
      img = await buildCheckpointImage(archive, { layoutDir: `${dir}/layout-gzip` });
    });
    rows.push(row("build gzip (pigz)", tGzip, refGzip, "tar|gzip", mib));
    const tBuiltin = await time(() =>
      buildCheckpointImage(archive, { layoutDir: `${dir}/layout-builtin`, builtinGzip: true })
    );
    rows.push(row("build gzip (CompressionStream)", tBuiltin, refGzip, "tar|gzip", mib));
    await Deno.remove(`${dir}/layout-builtin`, { recursive: true });
    const refZstd = await time(() =>
      sh(`tar -C ${dir} -cf - archive.tar | zstd -q -3 > ${dir}/ref.tzst`)
    );
    const tZstd = await time(() =>
      buildCheckpointImage(archive, { layoutDir: `${dir}/layout-zstd`, compression: "zstd" })
    );
    rows.push(row("build zstd", tZstd, refZstd, "tar|zstd", mib));
    const tNone = await time(() =>
      buildCheckpointImage(archive, { layoutDir: `${dir}/layout-none`, compression: "none" })
    );
    rows.push(row("build none", tNone, refGzip, "tar|gzip", mib));
    const sizes = {
      gzip: img.image.layers[0].size,
      zstd: (await Deno.stat(`${dir}/ref.tzst`)).size,
      refGzip: (await Deno.stat(`${dir}/ref.tgz`)).size,
    };
    await Deno.remove(`${dir}/layout-zstd`, { recursive: true });
    await Deno.remove(`${dir}/layout-none`, { recursive: true });
    await Deno.remove(`${dir}/ref.tgz`);
    await Deno.remove(`${dir}/ref.tzst`);

    // (a) push / pull vs skopeo copy (fresh repositories on each side)
    const layout = img.layoutDir;
    const refPush = await time(() =>
      sh(
        `skopeo copy -q --dest-tls-verify=false oci:${layout}:latest docker://${host}/bench/skopeo:v1`,
      )
    );
    const tPush = await time(() => pushImage(img, `${host}/bench/lpm:v1`, { insecure: true }));
    rows.push(row("push", tPush, refPush, "skopeo copy", mib));
    const refPull = await time(() =>
      sh(
        `skopeo copy -q --src-tls-verify=false docker://${host}/bench/skopeo:v1 oci:${dir}/skopeo-pull:latest`,
      )
    );
    const tPull = await time(() =>
      pullImage(`${host}/bench/lpm:v1`, `${dir}/lpm-pull`, { insecure: true })
    );
    rows.push(row("pull", tPull, refPull, "skopeo copy", mib));

    const header = ["step", "lpm", "reference", "ratio (ref/lpm)"];
    const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
    const line = (r: string[]) => r.map((x, c) => x.padEnd(widths[c])).join(" | ");
    console.log(`OCI checkpoint image, ${mib} MiB archive (ratio > 1: lpm is faster)`);
    console.log(line(header));
    console.log(widths.map((w) => "-".repeat(w)).join("-|-"));
    for (const r of rows) console.log(line(r));
    console.log(
      `layer sizes: lpm gzip ${(sizes.gzip / 2 ** 20).toFixed(0)} MiB, tar|gzip ${
        (sizes.refGzip / 2 ** 20).toFixed(0)
      } MiB, tar|zstd ${(sizes.zstd / 2 ** 20).toFixed(0)} MiB`,
    );
  } finally {
    await env.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
