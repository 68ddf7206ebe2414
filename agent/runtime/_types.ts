/**
 * The driver shapes the agent composes (kept structurally equal to
 * `driver.ts`'s `RuntimeDriver`, so both the kubelet driver and the Docker
 * driver fit).
 * @module
 */

/** Which container to checkpoint. */
export interface CheckpointTarget {
  /** Pod namespace. */
  namespace: string;
  /** Pod name. */
  pod: string;
  /** Container name in the pod. */
  container: string;
  /** Runtime's own container name or id, when known (Docker). */
  id?: string;
}

/** Options of a checkpoint. */
export interface CheckpointOptions {
  /** Directory for temp files of this checkpoint. */
  workDir: string;
  /** Cancels the checkpoint. */
  signal?: AbortSignal;
  /** Keep the container running after the dump. */
  leaveRunning?: boolean;
  /** Runtime timeout, seconds (0: the driver's default). */
  timeoutSeconds?: number;
}

/** What a checkpoint produced. */
export interface CheckpointOutcome {
  /** The archive (CRI-O layout tar) on this node. */
  archivePath: string;
  /** CRIU statistics, when the driver read them. */
  stats?: Record<string, number>;
  /** Runtime that took it. */
  runtime: { name: string; version?: string; criuVersion?: string };
  /** True when the archive lives outside the work dir and must be removed separately. */
  ownsArchive?: boolean;
}

/** Any driver the pipeline can use. */
export interface CheckpointDriver {
  /** Driver name ("kubelet", "docker"). */
  readonly name: string;
  /** Checkpoints one container into an archive. */
  checkpoint(ref: CheckpointTarget, opts: CheckpointOptions): Promise<CheckpointOutcome>;
  /** Restores an archive into a new container (Docker hosts). */
  restore?(
    archivePath: string,
    opts: { name: string; signal?: AbortSignal },
  ): Promise<{ containerId: string } | string>;
  /** Releases resources. */
  close?(): void;
}
