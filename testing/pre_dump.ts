/**
 * The pre-copy probe (issue 20, point 3): what a node's runtime can do
 * towards pre-copy, asked of the real tools. `memoryTracking` runs
 * `criu check --feature mem_dirty_track` (CRIU's incremental dumps need the
 * kernel's soft-dirty bit, `CONFIG_MEM_SOFT_DIRTY`); `preDumpRounds` pre-dumps a
 * running container through the node's runc (`runc checkpoint --pre-dump`,
 * each round with the previous one as parent) until the dirty set stops
 * shrinking or the round limit is hit, and records each round's pages and
 * bytes. `compareRounds` is the same loop for a kernel without soft-dirty:
 * full leave-running runc dumps, each compared page by page with the one
 * before (`archive/pagemap.ts`) to find its dirty set. The findings are in
 * docs/pre-copy.md.
 *
 *   deno run -A testing/pre_dump.ts --runc-root <containerd state>/runc/k8s.io \
 *     --container <id> --dir /tmp/pre-dump [--rounds 3] [--compare] [--interval-ms 1000]
 * @module
 */
import { dedupAgainstParent, parseCriuStats } from "../archive/mod.ts";
import { tool, toolPath } from "../localenv/tools.ts";

/** What `criu check --feature mem_dirty_track` said. */
export interface MemoryTracking {
  /** True when CRIU can track dirty memory on this kernel. */
  available: boolean;
  /** CRIU's own words (stdout and stderr). */
  output: string;
}

/** One pre-dump round. */
export interface PreDumpRound {
  /** 1-based. */
  round: number;
  /** Image directory of the round. */
  dir: string;
  /** True when runc and CRIU succeeded. */
  ok: boolean;
  /** runc's stderr when it failed. */
  error?: string;
  /** Milliseconds runc took. */
  ms: number;
  /** Bytes of `pages-*.img` the round wrote. */
  bytes: number;
  /** CRIU's `pagesWritten` (stats-dump), when it wrote one. */
  pagesWritten?: number;
  /** CRIU's `pagesSkippedParent`: pages the parent round already had. */
  pagesSkippedParent?: number;
}

/** Options of {@linkcode preDumpRounds}. */
export interface PreDumpOptions {
  /** runc's state root of the node's containerd (`<state>/runc/k8s.io`). */
  runcRoot: string;
  /** The container's id (the CRI id, which is runc's). */
  containerId: string;
  /** Directory for the rounds' images (`round-N/`) and work dirs. */
  dir: string;
  /** At most this many rounds. */
  rounds: number;
  /** runc binary (default: the one localenv's containerd runs, `tool("runc")`). */
  runc?: string;
}

async function run(
  cmd: string,
  args: string[],
): Promise<{ ok: boolean; out: string; err: string }> {
  const env = { PATH: toolPath() };
  const o = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { ok: o.success, out: dec.decode(o.stdout), err: dec.decode(o.stderr) };
}

/** Asks the node's CRIU whether it can track dirty memory (what pre-dump needs). */
export async function memoryTracking(): Promise<MemoryTracking> {
  const r = await run("criu", ["check", "--feature", "mem_dirty_track"]);
  return { available: r.ok, output: `${r.out}${r.err}`.trim() };
}

async function pagesBytes(dir: string): Promise<number> {
  let total = 0;
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && /^pages-\d+\.img$/.test(e.name)) {
      total += (await Deno.stat(`${dir}/${e.name}`)).size;
    }
  }
  return total;
}

/** One `runc checkpoint --pre-dump` round, with the previous round as parent. */
async function preDumpOnce(opts: PreDumpOptions, round: number): Promise<PreDumpRound> {
  const dir = `${opts.dir}/round-${round}`;
  const work = `${opts.dir}/work-${round}`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.mkdir(work, { recursive: true });
  const args = ["--root", opts.runcRoot, "checkpoint", "--pre-dump", "--image-path", dir];
  args.push("--work-path", work);
  // runc and CRIU read the parent path relative to the image directory.
  if (round > 1) args.push("--parent-path", `../round-${round - 1}`);
  args.push(opts.containerId);
  const t0 = performance.now();
  const r = await run(opts.runc ?? tool("runc"), args);
  const ms = Math.round(performance.now() - t0);
  if (!r.ok) return { round, dir, ok: false, error: r.err.trim(), ms, bytes: 0 };
  const stats = await Deno.readFile(`${work}/stats-dump`).then(parseCriuStats, () => undefined);
  return {
    round,
    dir,
    ok: true,
    ms,
    bytes: await pagesBytes(dir),
    pagesWritten: stats?.pagesWritten,
    pagesSkippedParent: stats?.pagesSkippedParent,
  };
}

/**
 * Pre-dumps the running container round after round while it runs; stops at
 * the first failure, when a round wrote no fewer bytes than the one before
 * (the dirty set stopped shrinking), or after `rounds`.
 */
export async function preDumpRounds(opts: PreDumpOptions): Promise<PreDumpRound[]> {
  const out: PreDumpRound[] = [];
  for (let i = 1; i <= opts.rounds; i++) {
    const r = await preDumpOnce(opts, i);
    out.push(r);
    if (!r.ok) break;
    if (out.length >= 2 && r.bytes >= out[out.length - 2].bytes) break;
  }
  return out;
}

/** The dirty set of full dump `dir` against full dump `prev`: pages changed, bytes. */
async function dirtySince(
  dir: string,
  prev: string,
): Promise<{ pages: number; same: number; bytes: number }> {
  const copy = `${dir}.compare`;
  const cp = await run("cp", ["-a", dir, copy]);
  if (!cp.ok) throw new Error(`Cannot copy "${dir}": ${cp.err.trim()}`);
  try {
    const r = await dedupAgainstParent(copy, prev);
    return { pages: r.pages - r.fromParent, same: r.fromParent, bytes: r.bytes };
  } finally {
    await Deno.remove(copy, { recursive: true });
  }
}

/**
 * Pre-copy rounds without memory tracking: a full `runc checkpoint
 * --leave-running` per round (`round-N/`, the source stops only for the
 * dump), `intervalMs` apart; each round's `bytes` and `pagesWritten` are its
 * dirty set against the round before (the first round: all of it), and
 * `pagesSkippedParent` the pages unchanged. Stops as `preDumpRounds` does.
 * The last round's directory is the parent of the final dump.
 */
export async function compareRounds(
  opts: PreDumpOptions & { intervalMs?: number },
): Promise<PreDumpRound[]> {
  const out: PreDumpRound[] = [];
  for (let i = 1; i <= opts.rounds; i++) {
    if (i > 1 && opts.intervalMs) await new Promise((r) => setTimeout(r, opts.intervalMs));
    const dir = `${opts.dir}/round-${i}`;
    const args = ["--root", opts.runcRoot, "checkpoint", "--leave-running", "--image-path", dir];
    args.push("--work-path", `${opts.dir}/work-${i}`, opts.containerId);
    const t0 = performance.now();
    const r = await run(opts.runc ?? tool("runc"), args);
    const ms = Math.round(performance.now() - t0);
    if (!r.ok) {
      out.push({ round: i, dir, ok: false, error: r.err.trim(), ms, bytes: 0 });
      break;
    }
    const d = i > 1 ? await dirtySince(dir, out[out.length - 1].dir) : undefined;
    const bytes = d ? d.bytes : await pagesBytes(dir);
    out.push({
      round: i,
      dir,
      ok: true,
      ms,
      bytes,
      pagesWritten: d ? d.pages : bytes / 4096,
      pagesSkippedParent: d?.same ?? 0,
    });
    if (out.length >= 2 && bytes >= out[out.length - 2].bytes) break;
  }
  return out;
}

function flag(name: string): string | undefined {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

if (import.meta.main) {
  const runcRoot = flag("runc-root"), containerId = flag("container"), dir = flag("dir");
  if (!runcRoot || !containerId || !dir) {
    console.error(
      "usage: pre_dump.ts --runc-root DIR --container ID --dir DIR [--rounds N] [--compare] " +
        "[--interval-ms MS]",
    );
    Deno.exit(2);
  }
  const tracking = await memoryTracking();
  console.log("memory tracking:", JSON.stringify(tracking));
  const opts = { runcRoot, containerId, dir, rounds: Number(flag("rounds") ?? 3) };
  // Without tracking, the rounds compare full dumps (--compare forces that mode).
  const rounds = tracking.available && !Deno.args.includes("--compare")
    ? await preDumpRounds(opts)
    : await compareRounds({ ...opts, intervalMs: Number(flag("interval-ms") ?? 1000) });
  for (const r of rounds) console.log(JSON.stringify(r));
}
