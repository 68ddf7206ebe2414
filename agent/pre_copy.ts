/**
 * Pre-copy of one running container (docs/pre-copy.md): the memory travels
 * while the workload still runs, so the frozen transfer carries only the
 * pages dirtied since.
 *
 * This kernel class has no soft-dirty tracking (CRIU's pre-dump refuses), so
 * a round is a full `runc checkpoint --leave-running` (through the node's
 * runc, on the state root containerd gives it; the container is stopped for
 * the dump's length and then runs on), and each round after the first is
 * compared page by page with the one before to find its dirty set. Rounds
 * stop when the dirty set stops shrinking or at the limit (KubeVirt's
 * convergence rule); only the last round is kept. It is packed as an image
 * layer of its own (`checkpoint/parent/...`) and pushed as a parent-only
 * image, which the target node pulls before the freeze. The final checkpoint
 * (pipeline.ts, `preCopy`) is then made incremental against that round and
 * pushed as a second layer above it: containerd merges the layers, and CRIU
 * reads the unchanged pages from `checkpoint/parent/`.
 * @module
 */
import { dedupAgainstParent, packParentLayer } from "../archive/mod.ts";
import type { PreCopyResult, PreCopyRound } from "../contract/agent.ts";
import { LPM } from "../oci/mod.ts";
import type { OperationPatch } from "./operations.ts";
import type { RegistrySettings, ResolvedClass } from "./pipeline.ts";

/** Round limits a request may ask for. */
export const PRE_COPY_LIMITS = { maxRounds: 16, maxIntervalMs: 60_000 } as const;

/** One pre-copy job. */
export interface PreCopyJob {
  /** Operation id. */
  operationId: string;
  /** Pod namespace. */
  namespace: string;
  /** Pod name. */
  pod: string;
  /** Container name. */
  container: string;
  /** At most this many rounds (1..16). */
  rounds: number;
  /** Milliseconds between rounds. */
  intervalMs: number;
}

/** What a pre-copy needs from the agent. */
export interface PreCopyDeps {
  /** The runc binary the node's containerd runs (`--runc`). */
  runc: string;
  /** runc's state root of containerd's CRI namespace (`--runc-root`). */
  runcRoot: string;
  /** The container's runtime id (containerd's, which is runc's), from the pod and name. */
  containerId: () => Promise<string>;
  /** The storage class (its registry receives the parent image). */
  resolveClass: () => Promise<ResolvedClass>;
  /** Pushes the parent-only image (`image_push.ts` `pushParentImage`). */
  pushParent: (layerPath: string, opts: {
    registry: RegistrySettings;
    tag: string;
    annotations: Record<string, string>;
    signal?: AbortSignal;
    onProgress?: (bytes: number) => void;
  }) => Promise<{ reference: string; digest: string; layer: { digest: string; size: number } }>;
  /** The operation's work directory (the last round stays there as `parent/`). */
  workDir: string;
  /** Records progress. */
  report: (patch: OperationPatch) => Promise<unknown>;
  /** Cancels the job. */
  signal?: AbortSignal;
  /** Structured log. */
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

/** Where a Succeeded pre-copy keeps its last round (the parent of the final dump). */
export function preCopyParentDir(workDir: string): string {
  return `${workDir}/parent`;
}

/** Checks a job's numbers; returns the message naming the field, or undefined. */
export function preCopyJobProblem(
  job: Pick<PreCopyJob, "rounds" | "intervalMs">,
): string | undefined {
  if (!Number.isInteger(job.rounds) || job.rounds < 1 || job.rounds > PRE_COPY_LIMITS.maxRounds) {
    return `Field "rounds" is ${job.rounds}: it must be 1 to ${PRE_COPY_LIMITS.maxRounds}`;
  }
  if (
    !Number.isInteger(job.intervalMs) || job.intervalMs < 0 ||
    job.intervalMs > PRE_COPY_LIMITS.maxIntervalMs
  ) {
    return `Field "interval_ms" is ${job.intervalMs}: it must be 0 to ${PRE_COPY_LIMITS.maxIntervalMs}`;
  }
  return undefined;
}

/** Bytes and pages of the `pages-*.img` files of a dump. */
async function pagesOf(dir: string): Promise<number> {
  let total = 0;
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && /^pages-\d+\.img$/.test(e.name)) {
      total += (await Deno.stat(`${dir}/${e.name}`)).size;
    }
  }
  return total / 4096;
}

/** One full dump that leaves the container running; the milliseconds it stopped it. */
async function dumpRound(
  deps: PreCopyDeps,
  id: string,
  dir: string,
  work: string,
): Promise<number> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.mkdir(work, { recursive: true });
  const t0 = performance.now();
  const out = await new Deno.Command(deps.runc, {
    args: [
      "--root",
      deps.runcRoot,
      "checkpoint",
      "--leave-running",
      "--image-path",
      dir,
      "--work-path",
      work,
      id,
    ],
    stdout: "null",
    stderr: "piped",
    signal: deps.signal,
  }).output().catch((err) => {
    throw new Error(`Cannot run "${deps.runc}" for a pre-copy round: ${(err as Error).message}`);
  });
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().slice(-2000);
    const log = await Deno.readTextFile(`${work}/dump.log`).then(
      (t) => `; CRIU's log ends: ${t.trim().split("\n").slice(-5).join(" | ")}`,
      () => "",
    );
    throw new Error(`runc checkpoint --leave-running failed: ${err}${log}`);
  }
  return Math.round(performance.now() - t0);
}

/**
 * Runs the rounds, keeps the last as `parent/`, pushes it as the
 * parent-only image; the container runs on throughout (stopped only for
 * each dump).
 */
export async function runPreCopy(job: PreCopyJob, deps: PreCopyDeps): Promise<PreCopyResult> {
  const what = `container "${job.container}" of pod "${job.namespace}/${job.pod}"`;
  const problem = preCopyJobProblem(job);
  if (problem) throw new Error(`Cannot pre-copy ${what}: ${problem}`);
  const log = deps.log ?? (() => {});
  await Deno.mkdir(deps.workDir, { recursive: true });
  await deps.report({ phase: "Running", step: "resolving storage class" });
  const cls = await deps.resolveClass();
  try {
    if (!cls.registry) {
      throw new Error(`Cannot pre-copy ${what}: class "${cls.name}" has no registry`);
    }
    if (cls.keys) {
      throw new Error(
        `Cannot pre-copy ${what}: class "${cls.name}" encrypts (spec.encryption), and pre-copy ` +
          "images are plain in this version",
      );
    }
    const id = await deps.containerId();
    const rounds: PreCopyRound[] = [];
    let last = "";
    for (let i = 1; i <= job.rounds; i++) {
      if (i > 1 && job.intervalMs) await new Promise((r) => setTimeout(r, job.intervalMs));
      deps.signal?.throwIfAborted();
      await deps.report({ step: `pre-copy round ${i}` });
      const dir = `${deps.workDir}/round-${i}`;
      const dumpMs = await dumpRound(deps, id, dir, `${deps.workDir}/work-${i}`);
      await Deno.remove(`${deps.workDir}/work-${i}`, { recursive: true }).catch(() => {});
      const pages = await pagesOf(dir);
      const dirty = last
        ? await dedupAgainstParent(dir, last, { countOnly: true })
        : { pages, fromParent: 0, bytes: pages * 4096 };
      const round = {
        round: i,
        pages,
        dirtyPages: dirty.pages - dirty.fromParent,
        dirtyBytes: dirty.bytes,
        dumpMs,
      };
      rounds.push(round);
      log("pre-copy round", { ...round });
      if (last) await Deno.remove(last, { recursive: true });
      last = dir;
      // Converged: this round dirtied no fewer bytes than the one before.
      if (rounds.length >= 2 && round.dirtyBytes >= rounds[rounds.length - 2].dirtyBytes) break;
    }
    const parent = preCopyParentDir(deps.workDir);
    await Deno.rename(last, parent);
    await deps.report({ step: "packing the parent layer" });
    const layerPath = `${deps.workDir}/parent-layer.tar`;
    await packParentLayer(parent, { outPath: layerPath, workDir: deps.workDir });
    const size = (await Deno.stat(layerPath)).size;
    await deps.report({ step: "pushing the parent image", bytesDone: 0, bytesTotal: size });
    const pushed = await deps.pushParent(layerPath, {
      registry: cls.registry,
      tag: `${job.pod}-${job.container}-${job.operationId}`.replace(/[^A-Za-z0-9._-]/g, "-")
        .slice(0, 128),
      annotations: {
        [LPM.sourcePod]: job.pod,
        [LPM.sourceNamespace]: job.namespace,
        [LPM.operation]: job.operationId,
      },
      signal: deps.signal,
      onProgress: (b) => void deps.report({ bytesDone: b }),
    });
    await Deno.remove(layerPath).catch(() => {});
    return {
      image: { reference: pushed.reference, digest: pushed.digest },
      rounds,
      layer: pushed.layer,
    };
  } finally {
    cls.store.close?.();
  }
}
