/**
 * `deno task bench migration [--sizes 16,256,1024] [--rounds 3]
 * [--dirty-percent-per-s 2] [--pre-copy] [--pre-copy-rounds 3] [--encrypted] [--json]
 * [--env env.json] [--svg docs/migration-bench.svg]`: how far a PodMigration's
 * downtime is from CRIU's own floor, on the real local nodes.
 *
 * Workload: the memory toucher (testing/memory_toucher.c), a static program
 * that fills N MiB with incompressible data and keeps dirtying a share of its
 * pages per second. Per size and round, back to back, the order alternating
 * each round (this VM favours whatever runs first):
 *
 * - **floor**: the same binary, same size and dirty rate, as a host process;
 *   `criu dump` (which freezes it) into a directory on the disk that holds
 *   the kubelet's checkpoint directory, then `criu restore -d` from it; the
 *   floor is the two commands' wall time. Why this floor and not `runc
 *   checkpoint` + `runc restore` of a twin container: it is the same CRIU
 *   binary moving the same bytes through the same page cache and disk, minus
 *   exactly what lpm and the runtime add around CRIU (container and pod
 *   plumbing, archive, registry, a second node). It is the least any
 *   checkpoint/restore of this process can cost here, and runc would only
 *   add its own fixed cost on top. Both sides move uncompressed pages, and
 *   neither syncs to disk.
 * - **lpm**: a pod running the toucher on node-a moved to node-b by a
 *   PodMigration (the toucher's image is busybox plus the binary, pushed to
 *   the environment's registry); downtime and total come from
 *   `status.timings` (downtimeMs: the source frozen to the restored
 *   container running), and the downtime is split by step (bench/_breakdown.ts)
 *   from the PodMigration's phase times, its ContainerCheckpoints'
 *   checkpointTime / completionTime / criuStats.frozenTimeUs, and the
 *   restored container's CRIU restore.log on node-b.
 * - `--encrypted` adds a stop-and-copy PodMigration through a second class,
 *   the same MinIO and registry with `spec.encryption` (a random key), per
 *   round, in the alternating order: the archive is encrypted on node-a and
 *   decrypted and imported on node-b. Prints its downtime against the plain
 *   stop-and-copy's (median ratio, and per round, side by side).
 * - `--pre-copy` adds a PodMigration with `spec.preCopy: {rounds}` per round
 *   (docs/pre-copy.md: rounds of leave-running dumps, each pulled on node-b
 *   while the toucher runs; only the pages dirtied since the last round
 *   cross while it is frozen). Its downtime counts from the freeze like the
 *   others'; its total includes the rounds.
 *
 * Prints the table, the breakdown, the agents' and controller's peak RSS
 * (VmHWM of their host processes: the peak since they started) and, with
 * `--json`, one JSON object per line per size and mode (medians). Writes the
 * SVG chart. Uses the environment of `--env` / `LPM_TEST_ENV` (2 nodes and
 * lpm as host processes, e.g. `deno task cluster:up --nodes 2 --with-lpm`),
 * else starts its own.
 * @module
 */
import { parseArgs } from "../base/args.ts";
import { type EnvironmentInfo, startEnvironment } from "../localenv/mod.ts";
import { deleteNamespaceAndWait, openWorkspace } from "../testing/e2e.ts";
import { memoryToucherBinary, memoryToucherImage } from "../testing/memory_toucher.ts";
import { parsePositiveInts, roundOrder } from "./_stats.ts";
import {
  breakdownTable,
  chartSeries,
  jsonLines,
  type LpmRun,
  type Mode,
  resultTable,
  type Round,
  slope,
  summarize,
} from "./_migration_report.ts";
import { lineChart } from "./_svg_chart.ts";
import { hostFloor } from "./_migration_floor.ts";
import {
  type BenchCtx,
  CLASS,
  ENCRYPTED_CLASS,
  lpmMigration,
  peakRssMiB,
} from "./_migration_lpm.ts";
import { createMinioClass } from "../localenv/mod.ts";
import type { LpmClient } from "../kube/lpm_client.ts";
import type * as k8s from "@kubernetes/client-node";

const USAGE = "deno task bench migration [--sizes 16,256,1024] [--rounds 3] " +
  "[--dirty-percent-per-s 2] [--pre-copy] [--pre-copy-rounds 3] [--encrypted] [--json] " +
  "[--env env.json] " +
  "[--svg docs/migration-bench.svg]";

function say(msg: string): void {
  console.error(`[bench migration] ${msg}`);
}

interface Options {
  sizes: number[];
  rounds: number;
  dirty: number;
  preCopyRounds?: number;
  encrypted: boolean;
  json: boolean;
  envPath?: string;
  svg: string;
}

function options(args: string[]): Options {
  const { flags } = parseArgs(args, {
    known: [
      "sizes",
      "rounds",
      "dirty-percent-per-s",
      "pre-copy",
      "pre-copy-rounds",
      "encrypted",
      "json",
      "env",
      "svg",
    ],
    booleans: ["pre-copy", "encrypted", "json"],
  });
  const rounds = parsePositiveInts(flags.rounds ?? "3", "rounds");
  const dirty = Number(flags["dirty-percent-per-s"] ?? 2);
  if (!(dirty >= 0 && dirty <= 100)) {
    throw new Error(
      `Bad --dirty-percent-per-s "${flags["dirty-percent-per-s"]}" (0 to 100)\n${USAGE}`,
    );
  }
  return {
    sizes: parsePositiveInts(flags.sizes ?? "16,256,1024", "sizes"),
    rounds: rounds[0],
    dirty,
    preCopyRounds: flags["pre-copy"] === "true"
      ? parsePositiveInts(flags["pre-copy-rounds"] ?? "3", "pre-copy-rounds")[0]
      : undefined,
    encrypted: flags.encrypted === "true",
    json: flags.json === "true",
    envPath: flags.env ?? Deno.env.get("LPM_TEST_ENV"),
    svg: flags.svg ?? new URL("../docs/migration-bench.svg", import.meta.url).pathname,
  };
}

async function environment(
  path: string | undefined,
): Promise<{ info: EnvironmentInfo; stop(): Promise<void> }> {
  if (path) {
    const info = JSON.parse(await Deno.readTextFile(path)) as EnvironmentInfo;
    if ((info.nodes?.length ?? 0) < 2 || !info.lpm) {
      throw new Error(`The environment "${path}" needs 2 nodes and lpm as host processes`);
    }
    return { info, stop: () => Promise.resolve() };
  }
  say("starting a private environment (2 nodes, lpm)");
  return await startEnvironment({
    parts: ["kube", "minio", "registry"],
    nodes: 2,
    lpm: true,
    onProgress: say,
  });
}

/** One round at one size: the floor and each lpm mode, in alternating order. */
async function round(ctx: BenchCtx, o: Options, sizeMiB: number, r: number): Promise<Round> {
  const modes: Mode[] = ["stop-and-copy"];
  if (o.preCopyRounds !== undefined && !ctx.preCopyUnsupported) modes.push("pre-copy");
  if (o.encrypted) modes.push("encrypted");
  const sides: ("floor" | Mode)[] = ["floor", ...modes];
  const order = roundOrder(r, sides);
  let floorS = NaN;
  const runs: LpmRun[] = [];
  for (const side of order) {
    if (side === "floor") {
      const f = await hostFloor(ctx.toucherBin, ctx.floorDir, sizeMiB, o.dirty);
      floorS = f.dumpS + f.restoreS;
      say(
        `${sizeMiB} MiB round ${r + 1}: floor ${floorS.toFixed(2)} s ` +
          `(dump ${f.dumpS.toFixed(2)}, restore ${f.restoreS.toFixed(2)})`,
      );
    } else {
      const run = await lpmMigration(ctx, {
        sizeMiB,
        dirty: o.dirty,
        mode: side,
        round: r,
        preCopyRounds: o.preCopyRounds,
      });
      if (run) {
        runs.push(run);
        say(
          `${sizeMiB} MiB round ${r + 1}: ${side} downtime ${run.downtimeS.toFixed(2)} s, total ${
            run.totalS.toFixed(2)
          } s`,
        );
      }
    }
  }
  return { sizeMiB, floorS, runs };
}

function printResults(o: Options, rounds: Round[], ctx: BenchCtx): void {
  const sums = summarize(rounds);
  console.log(
    `Migration node-a -> node-b vs CRIU floor, ${o.rounds} round(s), dirty ${o.dirty} %/s, median (min-max):`,
  );
  console.log(resultTable(sums));
  console.log("\nDowntime by step, median seconds:");
  console.log(breakdownTable(sums));
  for (const mode of ["stop-and-copy", "pre-copy"] as const) {
    const of = sums.filter((s) => s.mode === mode);
    if (of.length < 2) continue;
    const d = slope(of.map((s) => [s.sizeMiB, s.downtime.median]));
    const f = slope(of.map((s) => [s.sizeMiB, s.floor.median]));
    console.log(
      `\n${mode} slope: downtime ${(d * 1000).toFixed(2)} ms/MiB, floor ${
        (f * 1000).toFixed(2)
      } ms/MiB, ratio ${(d / f).toFixed(2)}`,
    );
  }
  const rss = peakRssMiB(ctx.env);
  console.log(
    `\nPeak RSS (VmHWM since start): ${
      rss.map((p) => `${p.name} ${p.mib.toFixed(0)} MiB`).join(", ")
    }`,
  );
  if (ctx.preCopyUnsupported) {
    console.log(`\npre-copy rows skipped: ${ctx.preCopyUnsupported}`);
  }
  if (o.encrypted) console.log(`\n${encryptionOverhead(rounds)}`);
  if (o.json) { for (const l of jsonLines(sums)) console.log(l); }
}

/** The short commit of HEAD, or "?" (noted on the chart with the run's start). */
async function headCommit(): Promise<string> {
  return await new Deno.Command("git", {
    args: ["rev-parse", "--short", "HEAD"],
    stdout: "piped",
    stderr: "null",
  }).output().then((x) => new TextDecoder().decode(x.stdout).trim() || "?", () => "?");
}

async function writeChart(
  o: Options,
  rounds: Round[],
  started: { commit: string; at: Date },
): Promise<void> {
  const svg = lineChart({
    title: "lpm migration vs CRIU floor (median seconds)",
    xLabel: "workload memory (MiB)",
    yLabel: "seconds",
    series: chartSeries(summarize(rounds)),
    note: `deno task bench migration --sizes ${o.sizes.join(",")} --rounds ${o.rounds}, ` +
      `dirty ${o.dirty} %/s; started at commit ${started.commit}, ${
        started.at.toISOString().slice(0, 16)
      }Z`,
  });
  await Deno.writeTextFile(o.svg, svg);
  // `deno task check` formats SVG too: write it the way the repository's fmt would.
  await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", o.svg], stderr: "null" })
    .output().catch(() => {});
  say(`chart written to ${o.svg}`);
}

/**
 * The encrypting class: a fresh random key in Secret `<class>-keys` (replaced
 * each run), the same bucket and registry as the plain class.
 */
async function openEncryptedClass(
  env: EnvironmentInfo,
  core: k8s.CoreV1Api,
  lpm: LpmClient,
): Promise<void> {
  const secret = `${ENCRYPTED_CLASS}-keys`;
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
  await core.deleteNamespacedSecret({ name: secret, namespace: "lpm-system" }).catch(() => {});
  await core.createNamespacedSecret({
    namespace: "lpm-system",
    body: { metadata: { name: secret }, stringData: { bench: key } },
  });
  await createMinioClass(core, lpm, {
    name: ENCRYPTED_CLASS,
    minio: env.minio!,
    prefix: "bench-encrypted/",
    repository: `${env.registry!.host}/lpm/bench-encrypted`,
    reuse: true,
    spec: {
      encryption: { secretRef: { name: secret, namespace: "lpm-system" }, keys: [{ id: "bench" }] },
    },
  });
}

/** Encrypted against plain stop-and-copy downtime: per round side by side, and the median ratio. */
function encryptionOverhead(rounds: readonly Round[]): string {
  const lines: string[] = [];
  for (const sizeMiB of [...new Set(rounds.map((r) => r.sizeMiB))]) {
    const pairs = rounds.filter((r) => r.sizeMiB === sizeMiB).map((r) => ({
      plain: r.runs.find((x) => x.mode === "stop-and-copy")?.downtimeS ?? NaN,
      enc: r.runs.find((x) => x.mode === "encrypted")?.downtimeS ?? NaN,
    })).filter((p) => p.plain > 0 && p.enc > 0);
    if (pairs.length === 0) continue;
    const ratios = pairs.map((p) => p.enc / p.plain).sort((a, b) => a - b);
    const med = ratios[Math.floor(ratios.length / 2)];
    const pct = (r: number) => `${((r - 1) * 100).toFixed(1)} %`;
    lines.push(
      `${sizeMiB} MiB encrypted vs plain downtime: median ${pct(med)} (min ${pct(ratios[0])}, ` +
        `max ${pct(ratios.at(-1)!)}); rounds: ${
          pairs.map((p) => `${p.plain.toFixed(2)} s -> ${p.enc.toFixed(2)} s`).join(", ")
        }`,
    );
  }
  return lines.join("\n") || "encrypted: no round had both a plain and an encrypted run";
}

/** Runs the benchmark. */
export async function main(args: string[]): Promise<void> {
  const o = options(args);
  const started = { commit: await headCommit(), at: new Date() };
  const env = await environment(o.envPath);
  const ns = `bench-mig-${crypto.randomUUID().slice(0, 6)}`;
  const floorDir = await Deno.makeTempDir({
    prefix: "lpm-bench-floor-",
    dir: env.info.nodes![0].dir,
  });
  let ws;
  try {
    ws = await openWorkspace(env.info, {
      ns,
      storageClass: { name: CLASS, prefix: "bench/", repository: "lpm/bench", reuse: true },
    });
    if (o.encrypted) await openEncryptedClass(env.info, ws.core, ws.lpm);
    const ctx: BenchCtx = {
      env: env.info,
      core: ws.core,
      lpm: ws.lpm,
      ns,
      image: await memoryToucherImage(env.info.registry!.host),
      toucherBin: await memoryToucherBinary(),
      floorDir,
      say,
    };
    const rounds: Round[] = [];
    for (const sizeMiB of o.sizes) {
      for (let r = 0; r < o.rounds; r++) rounds.push(await round(ctx, o, sizeMiB, r));
    }
    printResults(o, rounds, ctx);
    await writeChart(o, rounds, started);
  } finally {
    if (ws) await deleteNamespaceAndWait(ws.core, ns);
    await Deno.remove(floorDir, { recursive: true }).catch(() => {});
    await env.stop();
  }
}
