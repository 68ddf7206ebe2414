/**
 * `deno task bench oci [--mib 1024] [--rounds 4]`: OCI checkpoint image
 * throughput against a private local registry, each figure against a
 * reference doing the same work with the same tool settings, in the same run:
 *   (a) building the image from the archive vs the same compressor on the
 *       same archive in a shell pipe: lpm's gzip (pigz, all cores) vs
 *       `tar | pigz -6`; lpm's built-in gzip (CompressionStream, one thread)
 *       vs `tar | gzip -6` (one thread); lpm's zstd (`zstd -3 -T0`) vs
 *       `tar | zstd -3 -T0`; no compression vs `tar`;
 *   (b) push and pull of a built gzip image vs `skopeo copy` between an OCI
 *       layout and the registry.
 *
 * Fairness: every round starts from a fresh variant of the archive (its
 * first 4 KiB rewritten), so no side finds its layer already in the registry
 * or its blob cache; the push pair pushes two images of that variant family
 * built the same way (one per side, distinct digests, same size); each pair
 * runs back to back with the order alternating per round (this VM favours
 * whatever runs first, see bench/storage.ts), so use an even `--rounds`.
 * Prints min/median/max of both sides' seconds and of the ratio
 * reference/lpm (> 1: lpm is faster).
 * @module
 */
import { parseArgs } from "../base/args.ts";
import { startEnvironment } from "../localenv/mod.ts";
import { buildCheckpointImage, type CheckpointImage, pullImage, pushImage } from "../oci/mod.ts";
import { formatSpread, formatTable, parsePositiveInts, roundOrder, spread } from "./_stats.ts";

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

/** A fresh variant of the archive: random bytes over the first page of pages-1.img's data. */
async function freshVariant(archive: string): Promise<void> {
  // The tar's first 4 KiB hold headers and small files; page data starts later.
  await sh(`head -c 4096 /dev/urandom | dd of=${archive} bs=4096 seek=4 conv=notrunc status=none`);
}

/** One compared pair: the reference and lpm, seconds per round. */
export interface Pair {
  /** Step. */
  what: string;
  /** The reference's command. */
  refName: string;
  /** The reference's seconds, one per round. */
  ref: number[];
  /** lpm's seconds, one per round (same order as `ref`). */
  ours: number[];
}

/** The build pairs; `run` returns lpm's gzip image of its round (for the push/pull pairs). */
function buildPairs(dir: string, archive: string): {
  pairs: Pair[];
  run(round: number): Promise<CheckpointImage>;
} {
  const lay = (n: string) => `${dir}/layout-${n}`;
  const cases: [string, string, string, (layout: string) => Promise<CheckpointImage>][] = [
    [
      "build gzip (pigz)",
      "tar|pigz -6",
      "pigz -6",
      (l) => buildCheckpointImage(archive, { layoutDir: l }),
    ],
    [
      "build gzip (CompressionStream)",
      "tar|gzip -6",
      "gzip -6",
      (l) => buildCheckpointImage(archive, { layoutDir: l, builtinGzip: true }),
    ],
    [
      "build zstd",
      "tar|zstd -3 -T0",
      "zstd -q -3 -T0",
      (l) => buildCheckpointImage(archive, { layoutDir: l, compression: "zstd" }),
    ],
    [
      "build none",
      "tar",
      "cat",
      (l) => buildCheckpointImage(archive, { layoutDir: l, compression: "none" }),
    ],
  ];
  const pairs = cases.map(([what, refName]) => ({ what, refName, ref: [], ours: [] } as Pair));
  return {
    pairs,
    async run(round) {
      let gzip: CheckpointImage | undefined;
      for (const [i, [, , cmd, build]] of cases.entries()) {
        const name = `${i}-${round}`;
        const ref = () => sh(`tar -C ${dir} -cf - archive.tar | ${cmd} > ${dir}/ref.out`);
        const ours = async () => {
          const img = await build(lay(name));
          if (i === 0) gzip = img;
        };
        for (const side of roundOrder(round, ["ref", "ours"] as const)) {
          const s = await time(side === "ref" ? ref : ours);
          (side === "ref" ? pairs[i].ref : pairs[i].ours).push(s);
        }
        await Deno.remove(`${dir}/ref.out`);
        if (i !== 0) await Deno.remove(lay(name), { recursive: true });
      }
      return gzip!;
    },
  };
}

/** Push and pull of lpm's image vs skopeo's copy of a twin image, in alternating order. */
async function transferRound(
  dir: string,
  host: string,
  round: number,
  ours: CheckpointImage,
  twin: CheckpointImage,
  push: Pair,
  pull: Pair,
): Promise<void> {
  const sides = roundOrder(round, ["ref", "ours"] as const);
  for (const side of sides) {
    if (side === "ref") {
      push.ref.push(
        await time(() =>
          sh(
            `skopeo copy -q --dest-tls-verify=false oci:${twin.layoutDir}:latest docker://${host}/bench/skopeo-${round}:v1`,
          )
        ),
      );
    } else {
      push.ours.push(
        await time(() => pushImage(ours, `${host}/bench/lpm-${round}:v1`, { insecure: true })),
      );
    }
  }
  for (const side of sides) {
    if (side === "ref") {
      pull.ref.push(
        await time(() =>
          sh(
            `skopeo copy -q --src-tls-verify=false docker://${host}/bench/skopeo-${round}:v1 oci:${dir}/skopeo-pull-${round}:latest`,
          )
        ),
      );
    } else {
      pull.ours.push(
        await time(() =>
          pullImage(`${host}/bench/lpm-${round}:v1`, `${dir}/lpm-pull-${round}`, { insecure: true })
        ),
      );
    }
  }
  for (const d of [`skopeo-pull-${round}`, `lpm-pull-${round}`]) {
    await Deno.remove(`${dir}/${d}`, { recursive: true });
  }
}

/** The table of `pairs`: seconds of both sides and ref/lpm ratios, median (min-max). */
export function ociTable(pairs: readonly Pair[], mib: number): string {
  return formatTable(
    ["step", "lpm s", "MiB/s (median)", "reference", "ref s", "ratio ref/lpm"],
    pairs.map((p) => {
      const ours = spread(p.ours);
      return [
        p.what,
        formatSpread(ours),
        (mib / ours.median).toFixed(0),
        p.refName,
        formatSpread(spread(p.ref)),
        formatSpread(spread(p.ref.map((r, i) => r / p.ours[i]))),
      ];
    }),
  );
}

/** Runs the benchmark. */
export async function main(args: string[]): Promise<void> {
  const { flags } = parseArgs(args, { known: ["mib", "rounds"] });
  const mib = parsePositiveInts(flags.mib ?? "1024", "mib")[0];
  const rounds = parsePositiveInts(flags.rounds ?? "4", "rounds")[0];
  const dir = await Deno.makeTempDir({ prefix: "lpm-bench-oci-" });
  const env = await startEnvironment({ parts: ["registry"] });
  const host = env.info.registry!.host;
  try {
    console.error(`[bench oci] building a ${mib} MiB archive in ${dir}`);
    const archive = await makeArchive(dir, mib);
    const builds = buildPairs(dir, archive);
    const push: Pair = { what: "push", refName: "skopeo copy", ref: [], ours: [] };
    const pull: Pair = { what: "pull", refName: "skopeo copy", ref: [], ours: [] };
    for (let r = 0; r < rounds; r++) {
      await freshVariant(archive);
      await sh(`cat ${archive} > /dev/null`); // warm the page cache for both sides
      const ours = await builds.run(r);
      await freshVariant(archive);
      const twin = await buildCheckpointImage(archive, { layoutDir: `${dir}/twin-${r}` });
      await transferRound(dir, host, r, ours, twin, push, pull);
      await Deno.remove(ours.layoutDir, { recursive: true });
      await Deno.remove(twin.layoutDir, { recursive: true });
      console.error(`[bench oci] round ${r + 1}/${rounds} done`);
    }
    console.log(
      `OCI checkpoint image, ${mib} MiB archive, ${rounds} rounds (order alternating), ` +
        `median (min-max); ratio > 1: lpm is faster`,
    );
    console.log(ociTable([...builds.pairs, push, pull], mib));
  } finally {
    await env.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
