/**
 * The runtime driver interface: how the agent checkpoints a container into
 * a CRI-O-layout archive and (where the runtime allows it) restores one.
 * The one definition every driver (kubelet, Docker), the pipeline, the
 * server and the test and bench fakes use.
 * @module
 */
import type { CriuStats } from "../../archive/mod.ts";

/** Which container to checkpoint. */
export interface ContainerRef {
  /** Pod namespace (Kubernetes; the kubelet driver needs it). */
  namespace?: string;
  /** Pod name (Kubernetes; the kubelet driver needs it). */
  pod?: string;
  /** Container name (in the pod, or the runtime's container name). */
  container: string;
  /** Runtime's own container name or id, when it differs from `container`. */
  id?: string;
}

/** Options of {@linkcode RuntimeDriver.checkpoint}. */
export interface CheckpointOptions {
  /** Directory for this checkpoint's files; the archive is written here. */
  workDir: string;
  /** Cancels the checkpoint between steps. */
  signal?: AbortSignal;
  /** Keep the container running after the dump (default: it stops). */
  leaveRunning?: boolean;
  /** Runtime timeout in seconds (0 or absent: the driver's default). */
  timeoutSeconds?: number;
}

/** The runtime that took a checkpoint. */
export interface RuntimeVersion {
  /** Runtime name, e.g. `docker`. */
  name: string;
  /** Runtime version. */
  version?: string;
  /** CRIU version, when known. */
  criuVersion?: string;
}

/** What a checkpoint produced. */
export interface CheckpointResult {
  /** The archive (CRI-O layout tar). */
  archivePath: string;
  /** CRIU dump statistics, when the runtime left them. */
  stats?: CriuStats;
  /** Runtime that took it. */
  runtime: RuntimeVersion;
  /** True when the archive lives outside `workDir` and must be removed separately. */
  ownsArchive?: boolean;
}

/** Options of {@linkcode RuntimeDriver.restore}. */
export interface RestoreOptions {
  /** Name of the new container. */
  name: string;
  /** Cancels the restore between steps. */
  signal?: AbortSignal;
  /** Directory for temporary files (default: a temp dir). */
  workDir?: string;
}

/**
 * A container runtime the agent can checkpoint through. The runtime's version
 * travels in each {@linkcode CheckpointResult}, so the interface asks no more.
 */
export interface RuntimeDriver {
  /** Driver name (`docker`, `kubelet`). */
  readonly name: string;
  /** Checkpoints one container into an archive under `opts.workDir`. */
  checkpoint(ref: ContainerRef, opts: CheckpointOptions): Promise<CheckpointResult>;
  /** Restores an archive into a new container; returns its id. */
  restore?(archivePath: string, opts: RestoreOptions): Promise<{ containerId: string }>;
  /** Releases resources. */
  close?(): void;
}
