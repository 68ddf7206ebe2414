/**
 * The checkpoint pipeline of one container: runtime checkpoint -> archive ->
 * store the archive in the class's backend (streamed, sha256 computed on the
 * way) -> OCI checkpoint image pushed by digest to the class's registry ->
 * metadata JSON -> image tag -> remove the node-local archive.
 *
 * Publication is ordered so that a failure (or a killed agent) leaves nothing
 * half-published: the store publishes an object only when its stream ends,
 * the image manifest is pushed by digest (untagged, unreachable by name)
 * until the very end, and any step that fails after the archive was stored
 * deletes it again.
 * @module
 */
import { checkpointAnnotations, hostArchitecture, LPM } from "../oci/mod.ts";
import type { CheckpointStore, KeyRing, ObjectInfo, PutOptions } from "../storage/mod.ts";
import {
  checkpointKey,
  encryptedFileStream,
  ENCRYPTION_FORMAT,
  storeFile,
} from "../storage/mod.ts";
import { teeInStep } from "../base/tee.ts";
import { makeIncremental } from "../archive/mod.ts";
import type { CheckpointResult as DriverResult, RuntimeDriver } from "./runtime/driver.ts";
import type { CheckpointResult } from "../contract/agent.ts";
import type { Operation, OperationPatch } from "./operations.ts";
import { portablePod } from "./pod_spec.ts";

/** The class settings the pipeline needs. */
export interface ResolvedClass {
  /** CheckpointStorageClass name. */
  name: string;
  /** The store of the class. */
  store: CheckpointStore;
  /** The class's registry, when it has one. */
  registry?: RegistrySettings;
  /** The class's keys (spec.encryption): archives and images leave the node encrypted. */
  keys?: KeyRing;
}

/** Where and how checkpoint images are pushed. */
export interface RegistrySettings {
  /** Repository, e.g. `registry.example.com/lpm/checkpoints`. */
  repository: string;
  /** Plain HTTP. */
  insecure?: boolean;
  /** PEM CA bundle of the registry. */
  caBundle?: string;
  /** `username`/`password` (or `.dockerconfigjson`) of the registry Secret. */
  credentials?: Record<string, string>;
}

/** A pushed (not yet tagged) image. */
export interface PushedImage {
  /** Manifest digest. */
  digest: string;
  /** `repository@digest`. */
  reference: string;
  /** Makes the image reachable by `tag` (the last publish step). */
  tag(): Promise<void>;
}

/** Builds and pushes OCI checkpoint images (implemented over `oci/`). */
export interface ImagePublisher {
  /** Builds the checkpoint image of `archivePath` and pushes blobs and manifest by digest. */
  push(archivePath: string, opts: {
    registry: RegistrySettings;
    /**
     * The layer's bytes as a stream (the archive encrypted on its way out):
     * read instead of `archivePath`; `size` and `sha256` are then required.
     */
    body?: ReadableStream<Uint8Array>;
    tag: string;
    containerName: string;
    annotations: Record<string, string>;
    /** The archive's sha256 (hex), possibly still being computed by the store. */
    sha256?: string | Promise<string>;
    size?: number;
    /**
     * The archive is encrypted with class key `keyId`: push it as an ocicrypt
     * encrypted layer whose diff_id is the plaintext's sha256 (hex), which
     * may still be computed while the layer streams.
     */
    encryption?: { keyId: string; plainSha256: string | Promise<string> };
    /**
     * Layers already in the repository that go below the archive's (pre-copy:
     * the last round's images as `checkpoint/parent/`); uncompressed tars,
     * so each digest is also its diff_id.
     */
    baseLayers?: { digest: string; size: number }[];
    signal?: AbortSignal;
    onProgress?: (bytes: number) => void;
  }): Promise<PushedImage>;
}

/** A published volume image (see `volumes.ts`). */
export interface CarriedVolumeImage {
  /** emptyDir volumes in it. */
  names: string[];
  /** Bytes of volume data. */
  size: number;
  /** The image, pushed by digest, tagged by `tag()`. */
  image: PushedImage;
}

/** Carries a container's emptyDir volumes (implemented in `volumes.ts`). */
export interface VolumeCarrier {
  /**
   * Packs the emptyDirs `job.container` carries and pushes their image by
   * digest; undefined when it carries none.
   */
  carry(job: CheckpointJob, pod: unknown, opts: {
    registry?: RegistrySettings;
    workDir: string;
    tag: string;
    annotations?: Record<string, string>;
    signal?: AbortSignal;
    /** The class encrypts (spec.encryption): volume data must not leave the node in plaintext. */
    encrypted?: boolean;
  }): Promise<CarriedVolumeImage | undefined>;
}

/** One checkpoint job. */
export interface CheckpointJob {
  /** Operation id (also the checkpoint id in storage keys unless `checkpointId` is set). */
  operationId: string;
  /** Storage prefix segment shared by the containers of one pod checkpoint. */
  checkpointId?: string;
  /** Pod namespace. */
  namespace: string;
  /** Pod name. */
  pod: string;
  /** Container name. */
  container: string;
  /** Runtime container name or id (Docker). */
  containerRef?: string;
  /** Leave the container running. */
  leaveRunning?: boolean;
  /** Source pod JSON, kept in the metadata. */
  podJson?: string;
  /** Runtime timeout, seconds. */
  timeoutSeconds?: number;
  /** Keep the node-local archive when the pipeline fails. */
  keepArchiveOnFailure?: boolean;
  /**
   * Pre-copy (pre_copy.ts): the last round's CRIU images on this node and
   * their layer, already in the registry. The archive is made incremental
   * against them and the image gets that layer below the archive's.
   */
  preCopy?: {
    /** The last round's full dump. */
    parentDir: string;
    /** Pass-through levels above it (the rounds stopped before their limit). */
    passThrough: number;
    /** Every round's layer, first round first. */
    layers: { digest: string; size: number }[];
    /** The last round's image. */
    image: string;
  };
}

/** What the pipeline is given. */
export interface PipelineDeps {
  /** The runtime driver. */
  driver: RuntimeDriver;
  /** Builds the class (store + registry) for the job. */
  resolveClass: () => Promise<ResolvedClass>;
  /** Image publisher (required when the class has a registry). */
  images?: ImagePublisher;
  /** Carries emptyDir volumes (kubelet nodes); absent: volumes are not carried. */
  volumes?: VolumeCarrier;
  /** Reads CRIU stats from an archive when the driver did not. */
  readStats?: (archivePath: string) => Promise<Record<string, number> | undefined>;
  /** Work directory of the operation (temp files). */
  workDir: string;
  /** Where archives kept after a failure go. */
  keptDir: string;
  /** Records progress. */
  report: (patch: OperationPatch) => Promise<Operation | void>;
  /** Cancels the job. */
  signal?: AbortSignal;
  /** Node name and agent version for the metadata. */
  agent: { nodeName: string; version: string };
  /** Structured log. */
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

/** Timings of one run (ms), for logs and the benchmark. */
export interface PipelineTimings {
  /** Runtime checkpoint. */
  checkpointMs: number;
  /** From checkpoint end to everything stored and tagged. */
  publishMs: number;
  /** Archive size in bytes. */
  archiveBytes: number;
}

/** A storage key segment from any string (keys allow letters, digits, ".", "_", "-"). */
export function keySegment(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]/g, "-").replace(/^[^A-Za-z0-9]+/, "x").slice(0, 200);
}

/** Image tag of a checkpoint (at most 128 characters, OCI tag grammar). */
export function imageTag(job: Pick<CheckpointJob, "pod" | "container" | "operationId">): string {
  const raw = `${job.pod}-${job.container}-${job.operationId}`;
  return raw.replace(/[^A-Za-z0-9._-]/g, "-").replace(/^[^A-Za-z0-9_]+/, "").slice(0, 128);
}

async function removeQuietly(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch(() => {});
}

/** One run of the pipeline: the job, what it depends on and what was settled before the dump. */
interface PipelineRun {
  job: CheckpointJob;
  deps: PipelineDeps;
  /** `container "c" of pod "ns/p"`, for messages. */
  what: string;
  log: (msg: string, fields?: Record<string, unknown>) => void;
  /** The portable source pod, kept in the metadata and the image annotations. */
  sourcePod: Record<string, unknown> | undefined;
  /** The source container's image (the rootfs the checkpoint goes with). */
  sourceImage: string | undefined;
  architecture: string;
  cls: ResolvedClass;
}

/** The runtime's checkpoint of the container, on this node. */
interface TakenCheckpoint {
  outcome: DriverResult;
  archivePath: string;
  size: number;
  /** When the checkpoint was taken: its dump just ended (not after the uploads). */
  checkpointTime: string;
  /** performance.now() before and after the dump. */
  t0: number;
  t1: number;
  /** The archive encrypted (class with spec.encryption): what is stored and pushed. */
  sealed?: SealedArchive;
  /** Pre-copy: the archive is incremental against this parent (the runtime's was `fullSize`). */
  incremental?: {
    pages: number;
    fromParent: number;
    fullSize: number;
    parentImage: string;
    parentLayers: { digest: string; size: number }[];
  };
}

/**
 * The archive encrypted as it is read (never written to disk encrypted):
 * one pass feeds the store and, with a registry, the image push.
 */
interface SealedArchive {
  /** The store's copy of the encrypted bytes. */
  toStore: ReadableStream<Uint8Array>;
  /** The registry's copy (the same chunks, read in step), when the class has a registry. */
  toPush?: ReadableStream<Uint8Array>;
  /** Encrypted size, known up front. */
  size: number;
  keyId: string;
  /** sha256 (hex) of the plaintext archive, resolved when the stream has ended. */
  plainSha256: Promise<string>;
}

/** Where the archive and its metadata go in the store. */
interface StorageKeys {
  key: string;
  metaKey: string;
}

/** Runs the pipeline; resolves with the result, rejects with a clear error and nothing published. */
export async function runCheckpoint(
  job: CheckpointJob,
  deps: PipelineDeps,
): Promise<{ result: CheckpointResult; timings: PipelineTimings }> {
  const run = await beginRun(job, deps);
  const taken = await takeCheckpoint(run);
  const keys = storageKeys(job);
  const published: string[] = [];
  try {
    if (job.preCopy) await makeIncrementalArchive(run, taken, job.preCopy);
    taken.sealed = await sealArchive(run, taken.archivePath);
    const result = await publish(run, taken, keys, published);
    const t2 = performance.now();

    // 4. The node-local archive is no longer needed (the kubelet never removes it).
    await removeQuietly(taken.archivePath);
    await removeQuietly(deps.workDir);
    await deps.report({ localPaths: [] });
    return {
      result,
      timings: {
        checkpointMs: taken.t1 - taken.t0,
        publishMs: t2 - taken.t1,
        archiveBytes: taken.size,
      },
    };
  } catch (err) {
    throw await rollBack(run, taken, published, err);
  } finally {
    run.cls.store.close?.();
  }
}

/** Checks the job and resolves its class: everything that can fail before the container is touched. */
async function beginRun(job: CheckpointJob, deps: PipelineDeps): Promise<PipelineRun> {
  const what = `container "${job.container}" of pod "${job.namespace}/${job.pod}"`;
  const log = deps.log ?? (() => {});
  // Parsed before the checkpoint: a bad pod JSON fails the job before the container is touched.
  let sourcePod: Record<string, unknown> | undefined;
  try {
    sourcePod = portablePod(job.podJson);
  } catch (err) {
    throw new Error(`Cannot checkpoint ${what}: bad source pod JSON: ${(err as Error).message}`);
  }
  const sourceContainer = (sourcePod?.spec as { containers?: { name: string; image?: string }[] })
    ?.containers?.find((c) => c.name === job.container);
  const architecture = hostArchitecture();
  await Deno.mkdir(deps.workDir, { recursive: true });
  await deps.report({ phase: "Running", step: "resolving storage class" });
  const cls = await deps.resolveClass();
  if (job.preCopy && (cls.keys || !cls.registry)) {
    throw new Error(
      `Cannot checkpoint ${what} after a pre-copy: class "${cls.name}" ` +
        (cls.keys ? "encrypts (pre-copy images are plain in this version)" : "has no registry"),
    );
  }
  if (cls.registry && !deps.images) {
    throw new Error(
      `Cannot publish a checkpoint image of ${what}: this agent has no image builder`,
    );
  }
  return {
    job,
    deps,
    what,
    log,
    sourcePod,
    sourceImage: sourceContainer?.image,
    architecture,
    cls,
  };
}

/** The runtime checkpoint: the archive on this node, recorded as the operation's local path. */
async function takeCheckpoint({ job, deps, what, log }: PipelineRun): Promise<TakenCheckpoint> {
  await deps.report({ step: "checkpointing", bytesDone: 0, bytesTotal: 0 });
  const t0 = performance.now();
  let outcome: DriverResult;
  try {
    outcome = await deps.driver.checkpoint(
      { namespace: job.namespace, pod: job.pod, container: job.container, id: job.containerRef },
      {
        workDir: deps.workDir,
        signal: deps.signal,
        leaveRunning: job.leaveRunning,
        timeoutSeconds: job.timeoutSeconds,
      },
    );
  } catch (err) {
    throw new Error(
      `Checkpoint of ${what} failed in the ${deps.driver.name} driver: ${(err as Error).message}`,
      { cause: err }, // carries the CRIU log, when the driver read one
    );
  }
  const t1 = performance.now();
  // When the checkpoint was taken: its dump just ended (not after the uploads below).
  const checkpointTime = new Date().toISOString();
  const archivePath = outcome.archivePath;
  const localPaths = outcome.ownsArchive ? [archivePath] : [];
  await deps.report({ localPaths });
  const size = (await Deno.stat(archivePath)).size;
  log("checkpoint taken", { archivePath, size, ms: Math.round(t1 - t0) });
  return { outcome, archivePath, size, checkpointTime, t0, t1 };
}

/**
 * Pre-copy: the runtime's full archive becomes incremental against the last
 * round (pages unchanged since are `PE_PARENT` references; docs/pre-copy.md),
 * and that is what is stored and pushed. The stored archive then restores
 * only with its parent: the metadata names the parent image.
 */
async function makeIncrementalArchive(
  { deps, log }: PipelineRun,
  taken: TakenCheckpoint,
  preCopy: NonNullable<CheckpointJob["preCopy"]>,
): Promise<void> {
  await deps.report({ step: "comparing with the pre-copy round" });
  const t0 = performance.now();
  const outPath = `${deps.workDir}/incremental.tar`;
  const r = await makeIncremental(taken.archivePath, preCopy.parentDir, {
    outPath,
    workDir: deps.workDir,
    passThrough: preCopy.passThrough,
  });
  // The runtime's full archive is of no more use (as at the end of the pipeline).
  await removeQuietly(taken.archivePath);
  const fullSize = taken.size;
  taken.archivePath = outPath;
  taken.size = (await Deno.stat(outPath)).size;
  taken.incremental = { ...r, fullSize, parentImage: preCopy.image, parentLayers: preCopy.layers };
  await deps.report({ localPaths: [outPath] });
  log("archive made incremental against the pre-copy round", {
    pages: r.pages,
    fromParent: r.fromParent,
    fullSize,
    size: taken.size,
    ms: Math.round(performance.now() - t0),
  });
}

function storageKeys(job: CheckpointJob): StorageKeys {
  const checkpointId = keySegment(job.checkpointId ?? job.operationId);
  const key = checkpointKey({
    namespace: job.namespace,
    pod: job.pod,
    checkpointId,
    file: `${keySegment(job.container)}.tar`,
  });
  const metaKey = checkpointKey({
    namespace: job.namespace,
    pod: job.pod,
    checkpointId,
    file: `${keySegment(job.container)}.checkpoint.json`,
  });
  return { key, metaKey };
}

/**
 * Steps 0 to 3: volumes, archive and image, metadata, tags. Every stored key
 * goes into `published` as soon as it is visible, for the roll-back.
 */
async function publish(
  run: PipelineRun,
  taken: TakenCheckpoint,
  keys: StorageKeys,
  published: string[],
): Promise<CheckpointResult> {
  const { job, deps, cls } = run;
  const total = (taken.sealed?.size ?? taken.size) * (cls.registry ? 2 : 1);
  // 0. emptyDir contents, read as close to the dump as possible.
  const carried = await carryVolumes(run);
  // 1+2. The archive into the store and the registry at the same time.
  const { info, pushed, tag } = await storeAndPush(run, taken, keys.key, published, total);
  const image: CheckpointResult["image"] = pushed
    ? { reference: pushed.reference, digest: pushed.digest, tag }
    : { reference: "", digest: "" };
  const stats = taken.outcome.stats ??
    await deps.readStats?.(taken.archivePath).catch(() => undefined);

  // 3. Metadata, then the tag: the checkpoint becomes visible by name last.
  await deps.report({ step: "storing metadata", bytesDone: total });
  const result: CheckpointResult = {
    archive: { storageClassName: cls.name, key: keys.key, sha256: info.sha256, size: info.size },
    image,
    criuStats: stats,
    runtime: taken.outcome.runtime,
    checkpointTime: taken.checkpointTime,
    ...(carried
      ? {
        volumes: { names: carried.names, image: carried.image.reference, size: carried.size },
      }
      : {}),
  };
  const metadata = {
    operationId: job.operationId,
    namespace: job.namespace,
    pod: job.pod,
    container: job.container,
    node: deps.agent.nodeName,
    architecture: run.architecture,
    agentVersion: deps.agent.version,
    ...result,
    // archive.sha256 and size cover what is stored: the encrypted form when this is set.
    ...(taken.sealed
      ? {
        encryption: {
          format: ENCRYPTION_FORMAT,
          keyId: taken.sealed.keyId,
          plainSize: taken.size,
          plainSha256: await taken.sealed.plainSha256,
          sha256Covers: "encrypted",
        },
      }
      : {}),
    // The stored archive restores only with this parent (its checkpoint/parent/ layer).
    ...(taken.incremental
      ? {
        preCopy: {
          parentImage: taken.incremental.parentImage,
          parentLayers: taken.incremental.parentLayers,
          pages: taken.incremental.pages,
          pagesFromParent: taken.incremental.fromParent,
          fullArchiveSize: taken.incremental.fullSize,
        },
      }
      : {}),
    sourcePod: run.sourcePod,
  };
  const metaBytes = new TextEncoder().encode(JSON.stringify(metadata, null, 2));
  await cls.store.put(keys.metaKey, new Blob([metaBytes]).stream(), {
    signal: deps.signal,
    metadata: { "lpm-operation-id": job.operationId },
  });
  published.push(keys.metaKey);
  if (pushed) {
    await deps.report({ step: "tagging image" });
    await carried?.image.tag();
    await pushed.tag();
  }
  return result;
}

/** Step 0: the container's emptyDir volumes, pushed by digest (untagged). */
async function carryVolumes(
  { job, deps, cls, log }: PipelineRun,
): Promise<CarriedVolumeImage | undefined> {
  if (!deps.volumes || !job.podJson) return undefined;
  await deps.report({ step: "carrying emptyDir volumes" });
  const carried = await deps.volumes.carry(job, JSON.parse(job.podJson), {
    registry: cls.registry,
    workDir: deps.workDir,
    tag: `${imageTag(job).slice(0, 120)}-volumes`,
    encrypted: Boolean(cls.keys),
    annotations: {
      [LPM.sourcePod]: job.pod,
      [LPM.sourceNamespace]: job.namespace,
      [LPM.sourceNode]: deps.agent.nodeName,
      [LPM.operation]: job.operationId,
    },
    signal: deps.signal,
  });
  if (carried) log("volumes carried", { names: carried.names, size: carried.size });
  return carried;
}

/** The two transfers of steps 1+2, which cancel each other. */
interface Transfers {
  /** Aborts both (the job's signal, or the side that fails first). */
  both: AbortController;
  /** The archive's sha256, resolved when the store is done. */
  sha: PromiseWithResolvers<string>;
  /** The side that fails first is the cause; the other one only saw the abort. */
  firstError?: unknown;
  storedBytes: number;
  pushedBytes: number;
  progress(): void;
}

/**
 * Steps 1+2. The archive into the store (sha256 computed on the way) and, at
 * the same time, into the registry as the image layer, which is the archive
 * itself: its digest is the store's sha256, handed over when the store is
 * done. The manifest is pushed by digest only. Either failing cancels the other.
 */
async function storeAndPush(
  run: PipelineRun,
  taken: TakenCheckpoint,
  key: string,
  published: string[],
  total: number,
): Promise<{ info: ObjectInfo; pushed: PushedImage | undefined; tag: string }> {
  const { deps, cls } = run;
  await deps.report({
    step: (cls.keys ? "encrypting, " : "") +
      (cls.registry ? "storing archive and pushing image" : "storing archive"),
    bytesDone: 0,
    bytesTotal: total,
  });
  const both = new AbortController();
  const onOuterAbort = () => both.abort(deps.signal?.reason);
  deps.signal?.addEventListener("abort", onOuterAbort, { once: true });
  const t: Transfers = {
    both,
    sha: Promise.withResolvers<string>(),
    storedBytes: 0,
    pushedBytes: 0,
    progress: () => void deps.report({ bytesDone: t.storedBytes + t.pushedBytes }),
  };
  t.sha.promise.catch(() => {});
  const storing = storeArchive(run, taken, key, t).then((info) => {
    published.push(key);
    return info;
  });
  const tag = imageTag(run.job);
  const pushing = pushImage(run, taken, tag, t);
  try {
    // allSettled first: never leave one side running while reporting the other's error.
    const [s1, s2] = await Promise.allSettled([storing, pushing]);
    if (s1.status === "rejected" || s2.status === "rejected") throw t.firstError;
    return {
      info: (s1 as PromiseFulfilledResult<ObjectInfo>).value,
      pushed: (s2 as PromiseFulfilledResult<PushedImage | undefined>).value,
      tag,
    };
  } finally {
    deps.signal?.removeEventListener("abort", onOuterAbort);
  }
}

/**
 * Step 1: the archive is a file: the store's file path (a kernel copy on
 * filesystems); encrypted, the stream that encrypts it.
 */
function storeArchive(
  { job, cls }: PipelineRun,
  taken: TakenCheckpoint,
  key: string,
  t: Transfers,
): Promise<ObjectInfo> {
  const sealed = taken.sealed;
  const put = (opts: PutOptions) =>
    sealed
      ? cls.store.put(key, sealed.toStore, opts)
      : storeFile(cls.store, key, taken.archivePath, opts);
  return put({
    size: sealed?.size ?? taken.size,
    signal: t.both.signal,
    metadata: {
      "lpm-operation-id": job.operationId,
      "lpm-container": job.container,
      "lpm-runtime": taken.outcome.runtime.name,
      ...(taken.sealed
        ? { "lpm-encryption": `${ENCRYPTION_FORMAT};key=${taken.sealed.keyId}` }
        : {}),
    },
    onProgress: (b) => {
      t.storedBytes = b;
      t.progress();
    },
  }).then((info) => {
    t.sha.resolve(info.sha256);
    return info;
  }, (err) => {
    t.firstError ??= err;
    t.sha.reject(err);
    t.both.abort(err);
    throw err;
  });
}

/** Step 2: the checkpoint image, pushed by digest; undefined when the class has no registry. */
function pushImage(
  run: PipelineRun,
  taken: TakenCheckpoint,
  tag: string,
  t: Transfers,
): Promise<PushedImage> | undefined {
  const { job, deps, cls } = run;
  if (!cls.registry || !deps.images) return undefined;
  const runtime = taken.outcome.runtime;
  return deps.images.push(taken.archivePath, {
    registry: cls.registry,
    body: taken.sealed?.toPush,
    tag,
    containerName: job.container,
    sha256: t.sha.promise,
    size: taken.sealed?.size ?? taken.size,
    encryption: taken.sealed
      ? { keyId: taken.sealed.keyId, plainSha256: taken.sealed.plainSha256 }
      : undefined,
    baseLayers: taken.incremental?.parentLayers,
    signal: t.both.signal,
    annotations: checkpointAnnotations({
      containerName: job.container,
      rootfsImageName: run.sourceImage,
      pod: job.pod,
      namespace: job.namespace,
      node: deps.agent.nodeName,
      checkpointTime: taken.checkpointTime,
      engine: runtime.name,
      engineVersion: runtime.version,
      criuVersion: runtime.criuVersion,
      architecture: run.architecture,
      podSpec: run.sourcePod ? JSON.stringify(run.sourcePod) : undefined,
      compression: "none",
    }),
    onProgress: (b) => {
      t.pushedBytes = b;
      t.progress();
    },
  }).catch((err) => {
    const e = new Error(`Cannot push the checkpoint image: ${(err as Error).message}`);
    t.firstError ??= e;
    t.both.abort(e);
    throw e;
  });
}

/**
 * With class keys, the archive encrypted as it is read: the store and the
 * registry get only that form, from one pass over the archive (no encrypted
 * copy on disk, no pass before the upload).
 */
async function sealArchive(
  { cls, log }: PipelineRun,
  archivePath: string,
): Promise<SealedArchive | undefined> {
  if (!cls.keys) return undefined;
  const enc = await encryptedFileStream(archivePath, cls.keys);
  const [toStore, toPush] = cls.registry ? teeInStep(enc.stream) : [enc.stream, undefined];
  log("archive encrypted on its way out", { keyId: cls.keys.active.id, size: enc.size });
  return {
    toStore,
    toPush,
    size: enc.size,
    keyId: cls.keys.active.id,
    plainSha256: enc.plainSha256,
  };
}

/**
 * After a failure: deletes what was stored, keeps or removes the node-local
 * archive, and returns the error to throw.
 */
async function rollBack(
  { job, deps, cls, what }: PipelineRun,
  taken: TakenCheckpoint,
  published: string[],
  err: unknown,
): Promise<Error> {
  for (const k of published) await cls.store.delete(k).catch(() => {});
  // An encrypting stream nobody read yet holds the archive open.
  await taken.sealed?.toStore.cancel(err).catch(() => {});
  let kept = "";
  if (job.keepArchiveOnFailure) {
    await Deno.mkdir(deps.keptDir, { recursive: true });
    kept = `${deps.keptDir}/${keySegment(job.operationId)}.tar`;
    await Deno.rename(taken.archivePath, kept).catch(() => kept = taken.archivePath);
    await deps.report({ localPaths: [kept] });
  } else {
    await removeQuietly(taken.archivePath);
    await deps.report({ localPaths: [] });
  }
  await removeQuietly(deps.workDir);
  return new Error(
    `Cannot publish the checkpoint of ${what}: ${(err as Error).message}; nothing was published` +
      (kept ? `, the archive is kept at "${kept}"` : ", the local archive was removed"),
  );
}
