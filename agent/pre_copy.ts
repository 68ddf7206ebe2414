/**
 * Pre-copy of one running container, one round per operation
 * (docs/pre-copy.md): the memory travels while the workload still runs, so
 * the frozen transfer carries only the pages dirtied since the last round.
 *
 * This kernel class has no soft-dirty tracking (CRIU's pre-dump refuses), so
 * a round is a full `runc checkpoint --leave-running` (through the node's
 * runc, on the state root containerd gives it; the container is stopped for
 * the dump's length and then runs on). Round 1's images are its layer as
 * they are; round k's are compared page by page with round k-1's full dump
 * (kept on the node) and only the pages that changed go into its layer,
 * the rest marked as in the parent. Each round's images sit in its layer at
 * `checkpoint/parent/.../parent/`, round k of at most L rounds L - k + 1
 * levels deep, so each round is the `parent` of the next and CRIU follows
 * the chain (containerd refuses symbolic links in a checkpoint, so the
 * depths are fixed when a round is taken). The round's image is the
 * previous round's layers plus this one, pushed by digest; the target pulls
 * it (only the new layer crosses) before the next round or the freeze, as
 * the controller decides (KubeVirt's convergence idea: another round while
 * the dirty set shrinks). The final checkpoint (pipeline.ts, `preCopy`) is
 * made incremental against the last round's full dump, with pass-through
 * levels down to that round when the rounds stopped before their limit.
 * @module
 */
import { dedupAgainstParent, packParentLayer } from "../archive/mod.ts";
import type { PreCopyResult, PreCopyRound } from "../contract/agent.ts";
import { LPM } from "../oci/mod.ts";
import type { OperationPatch } from "./operations.ts";
import type { RegistrySettings, ResolvedClass } from "./pipeline.ts";

/** Rounds one chain may have (round directory names are bounded). */
export const MAX_PRE_COPY_ROUNDS = 16;

/** One pre-copy round. */
export interface PreCopyJob {
  /** Operation id. */
  operationId: string;
  /** Pod namespace. */
  namespace: string;
  /** Pod name. */
  pod: string;
  /** Container name. */
  container: string;
  /** The most rounds of the chain (1..16): round n goes `maxRounds - n + 1` parents deep. */
  maxRounds: number;
  /** The previous round of the same container (its full dump and its layers), or none. */
  previous?: {
    /** Its round number. */
    round: number;
    /** Its full dump on this node. */
    dumpDir: string;
    /** Every layer so far. */
    layers: { digest: string; size: number }[];
  };
}

/** What a pre-copy round needs from the agent. */
export interface PreCopyDeps {
  /** The runc binary the node's containerd runs (`--runc`). */
  runc: string;
  /** runc's state root of containerd's CRI namespace (`--runc-root`). */
  runcRoot: string;
  /** The container's runtime id (containerd's, which is runc's), from the pod and name. */
  containerId: () => Promise<string>;
  /** The storage class (its registry receives the parent image). */
  resolveClass: () => Promise<ResolvedClass>;
  /** Pushes the round's layer and the image of all rounds (`image_push.ts` `pushParentImage`). */
  pushParent: (layerPath: string, opts: {
    registry: RegistrySettings;
    tag: string;
    annotations: Record<string, string>;
    baseLayers: { digest: string; size: number }[];
    signal?: AbortSignal;
    onProgress?: (bytes: number) => void;
  }) => Promise<{ reference: string; digest: string; layer: { digest: string; size: number } }>;
  /** The operation's work directory (its full dump stays there as `dump/`). */
  workDir: string;
  /** Records progress. */
  report: (patch: OperationPatch) => Promise<unknown>;
  /** Cancels the job. */
  signal?: AbortSignal;
  /** Structured log. */
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

/** Why round `n` of a chain of at most `maxRounds` cannot be taken, or undefined. */
export function preCopyRoundProblem(n: number, maxRounds: number): string | undefined {
  if (!Number.isInteger(maxRounds) || maxRounds < 1 || maxRounds > MAX_PRE_COPY_ROUNDS) {
    return `Field "max_rounds" is ${maxRounds}: it must be 1 to ${MAX_PRE_COPY_ROUNDS}`;
  }
  if (n > maxRounds) return `round ${n} is past the chain's max_rounds ${maxRounds}`;
  return undefined;
}

/** Where a Succeeded round keeps its full dump (the comparison base of what follows). */
export function preCopyDumpDir(workDir: string): string {
  return `${workDir}/dump`;
}

/** Pages in the `pages-*.img` files of a dump. */
async function pagesOf(dir: string): Promise<number> {
  let total = 0;
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && /^pages-\d+\.img$/.test(e.name)) {
      total += (await Deno.stat(`${dir}/${e.name}`)).size;
    }
  }
  return total / 4096;
}

/**
 * One full dump that leaves the container running; the milliseconds the
 * runc command took (CRIU stops the container for part of it: an upper bound).
 */
async function dumpRound(deps: PreCopyDeps, id: string, dir: string): Promise<number> {
  const work = `${deps.workDir}/runc-work`;
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
  const ms = Math.round(performance.now() - t0);
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().slice(-2000);
    const log = await Deno.readTextFile(`${work}/dump.log`).then(
      (t) => `; CRIU's log ends: ${t.trim().split("\n").slice(-5).join(" | ")}`,
      () => "",
    );
    throw new Error(`runc checkpoint --leave-running failed: ${err}${log}`);
  }
  await Deno.remove(work, { recursive: true }).catch(() => {});
  return ms;
}

/**
 * Runs one round: the dump, its layer (incremental against the previous
 * round's dump), the image of all rounds so far pushed by digest. The
 * container runs on throughout (stopped only for the dump).
 */
export async function runPreCopy(job: PreCopyJob, deps: PreCopyDeps): Promise<PreCopyResult> {
  const what = `container "${job.container}" of pod "${job.namespace}/${job.pod}"`;
  const n = (job.previous?.round ?? 0) + 1;
  const problem = preCopyRoundProblem(n, job.maxRounds);
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
    await deps.report({ step: `pre-copy round ${n}: dumping` });
    const dump = preCopyDumpDir(deps.workDir);
    const dumpMs = await dumpRound(deps, id, dump);
    const pages = await pagesOf(dump);
    // Round 1 goes as it is; a later round only with the pages changed since the one before.
    let images = dump;
    let dirty = { pages, fromParent: 0, bytes: pages * 4096 };
    if (job.previous) {
      await deps.report({ step: `pre-copy round ${n}: comparing with round ${n - 1}` });
      images = `${deps.workDir}/incremental`;
      await Deno.mkdir(images, { recursive: true });
      dirty = await dedupAgainstParent(dump, job.previous.dumpDir, { outDir: images });
    }
    const round: PreCopyRound = {
      round: n,
      pages,
      dirtyPages: dirty.pages - dirty.fromParent,
      dirtyBytes: dirty.bytes,
      dumpMs,
    };
    log("pre-copy round", { ...round });
    const layerPath = `${deps.workDir}/layer.tar`;
    await packParentLayer(images, {
      outPath: layerPath,
      workDir: deps.workDir,
      depth: job.maxRounds - n + 1,
    });
    if (images !== dump) await Deno.remove(images, { recursive: true });
    const size = (await Deno.stat(layerPath)).size;
    await deps.report({ step: `pre-copy round ${n}: pushing`, bytesDone: 0, bytesTotal: size });
    const base = job.previous?.layers ?? [];
    const pushed = await deps.pushParent(layerPath, {
      registry: cls.registry,
      tag: `${job.pod}-${job.container}-${job.operationId}`.replace(/[^A-Za-z0-9._-]/g, "-")
        .slice(0, 128),
      annotations: {
        [LPM.sourcePod]: job.pod,
        [LPM.sourceNamespace]: job.namespace,
        [LPM.operation]: job.operationId,
      },
      baseLayers: base,
      signal: deps.signal,
      onProgress: (b) => void deps.report({ bytesDone: b }),
    });
    await Deno.remove(layerPath).catch(() => {});
    return {
      image: { reference: pushed.reference, digest: pushed.digest },
      round,
      layers: [...base, pushed.layer],
    };
  } finally {
    cls.store.close?.();
  }
}
