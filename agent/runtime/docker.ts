/**
 * The Docker runtime driver: checkpoints a container with Docker's
 * experimental checkpoint API (CRIU under runc) and packages the CRIU images
 * in the CRI-O archive layout (`config.dump`, `spec.dump`, `checkpoint/`,
 * `rootfs-diff.tar`, `deleted.files`, `network.status`, `stats-dump`,
 * `dump.log`); restores such an archive into a new container by copying its
 * `checkpoint/` into the new container's checkpoint store (Docker 20.10
 * refuses `--checkpoint-dir` on start) and starting it from there.
 * @module
 */
import Docker from "dockerode";
import {
  ARCHIVE_FILES,
  type ConfigDump,
  packArchive,
  readArchive,
  unpackArchive,
} from "../../archive/mod.ts";
import { parseCriuStats } from "../../archive/stats.ts";
import type {
  CheckpointOptions,
  CheckpointResult,
  ContainerRef,
  RestoreOptions,
  RuntimeDriver,
  RuntimeVersion,
} from "./driver.ts";
import { captureCriuFiles } from "./_docker_stats.ts";
import { applyRootfsDiff, writeRootfsDiff } from "./_docker_rootfs.ts";
/** Exported for the hostile-input tests, which apply changes to a plain directory. */
export { applyRootfsChanges, rootfsDiffPolicy } from "./_docker_rootfs.ts";
export type { RootfsTarget } from "./_docker_rootfs.ts";
import { criuVersion } from "./criu_version.ts";

/** Options of {@linkcode createDockerDriver}. */
export interface DockerDriverOptions {
  /** Docker Engine socket. */
  socketPath: string;
  /** dockerd's exec-root (where task bundles live); found from the container when absent. */
  execRoot?: string;
  /** Network mode of restored containers (default `none`). */
  networkMode?: string;
}

const TASKS = "containerd/daemon/io.containerd.runtime.v2.task/moby";

/** Docker's checkpoint calls, which dockerode implements but does not type. */
interface CheckpointApi {
  createCheckpoint(o: Record<string, unknown>): Promise<unknown>;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

function stamp(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, "Z");
}

/** The Docker driver. */
export class DockerDriver implements RuntimeDriver {
  /** Driver name. */
  readonly name = "docker";
  /** The dockerode client. */
  readonly docker: Docker;
  #opts: DockerDriverOptions;
  #rootDir?: string;

  /** Connects to the engine at `opts.socketPath` (lazily). */
  constructor(opts: DockerDriverOptions) {
    this.#opts = opts;
    this.docker = new Docker({ socketPath: opts.socketPath });
  }

  /** Engine version and CRIU version (CRIU from PATH, as dockerd's runc uses it). */
  async version(): Promise<RuntimeVersion> {
    const v = await this.docker.version();
    return { name: "docker", version: v.Version, criuVersion: await criuVersion() };
  }

  async #dockerRoot(): Promise<string> {
    if (!this.#rootDir) this.#rootDir = (await this.docker.info()).DockerRootDir as string;
    return this.#rootDir!;
  }

  /** The task bundle of a running container (config.json, `work` link). */
  async #bundle(info: Docker.ContainerInspectInfo): Promise<string | undefined> {
    if (this.#opts.execRoot) {
      const b = `${this.#opts.execRoot}/${TASKS}/${info.Id}`;
      if (await exists(`${b}/config.json`)) return b;
    }
    try {
      // The shim's working directory is the bundle.
      const status = await Deno.readTextFile(`/proc/${info.State.Pid}/status`);
      const ppid = /PPid:\s*(\d+)/.exec(status)?.[1];
      const b = await Deno.readLink(`/proc/${ppid}/cwd`);
      if (await exists(`${b}/config.json`)) return b;
    } catch {
      // Not visible from here (agent in another pid namespace).
    }
    return undefined;
  }

  /** Checkpoints container `ref.id ?? ref.container` into an archive under `opts.workDir`. */
  async checkpoint(ref: ContainerRef, opts: CheckpointOptions): Promise<CheckpointResult> {
    const target = ref.id ?? ref.container;
    const what = `container "${target}"`;
    const container = this.docker.getContainer(target);
    let info: Docker.ContainerInspectInfo;
    try {
      info = await container.inspect();
    } catch (err) {
      throw new Error(
        `Cannot checkpoint ${what}: Docker cannot find it: ${(err as Error).message}`,
      );
    }
    if (!info.State.Running) {
      throw new Error(
        `Cannot checkpoint ${what}: it is not running (state "${info.State.Status}")`,
      );
    }
    opts.signal?.throwIfAborted();
    await Deno.mkdir(opts.workDir, { recursive: true });
    const staging = await Deno.makeTempDir({ dir: opts.workDir, prefix: ".staging-" });
    try {
      const bundle = await this.#bundle(info);
      const spec = bundle
        ? JSON.parse(await Deno.readTextFile(`${bundle}/config.json`)) as Record<string, unknown>
        : specFromInspect(info);
      let taskDir: string | undefined;
      if (bundle) taskDir = await Deno.realPath(`${bundle}/work`).catch(() => undefined);
      taskDir ??= `${await this.#dockerRoot()}/${TASKS}/${info.Id}`;
      const cpId = `lpm-${crypto.randomUUID().slice(0, 8)}`;
      const cpParent = `${staging}/.images`;
      await Deno.mkdir(cpParent);
      const root = await this.#dockerRoot();
      // Docker's own temp dir shares the filesystem with the task dirs (data-root).
      const linkDir = (await exists(`${root}/tmp`)) ? `${root}/tmp` : root;
      const capture = captureCriuFiles(taskDir, linkDir);
      const checkpointedAt = new Date();
      try {
        await (container as unknown as CheckpointApi).createCheckpoint({
          CheckpointID: cpId,
          CheckpointDir: cpParent,
          Exit: !opts.leaveRunning,
        });
      } catch (err) {
        await capture.finish(staging).catch(() => {});
        throw new Error(`Cannot checkpoint ${what}: Docker/CRIU failed: ${(err as Error).message}`);
      }
      const captured = await capture.finish(staging);
      await Deno.rename(`${cpParent}/${cpId}`, `${staging}/${ARCHIVE_FILES.checkpointDir}`);
      await Deno.remove(cpParent, { recursive: true });
      opts.signal?.throwIfAborted();

      const image = await this.docker.getImage(info.Image).inspect().catch(() => undefined);
      const name = info.Name.replace(/^\//, "");
      const config: ConfigDump = {
        id: info.Id,
        name,
        rootfsImage: info.Image,
        rootfsImageRef: image?.RepoDigests?.[0] ?? info.Image,
        rootfsImageName: info.Config.Image,
        runtime: "runc",
        createdTime: info.Created,
        checkpointedTime: stamp(checkpointedAt),
        restoredTime: "0001-01-01T00:00:00Z",
        restored: false,
      };
      const annotations = { ...(spec.annotations as Record<string, string> | undefined) };
      // checkpointctl's containerd reader takes the names from these.
      annotations["io.kubernetes.cri.container-name"] = ref.pod ? ref.container : name;
      if (ref.namespace) annotations["io.kubernetes.cri.sandbox-namespace"] = ref.namespace;
      if (ref.pod) annotations["io.kubernetes.cri.sandbox-name"] = ref.pod;
      annotations["io.container.manager"] = "docker";
      spec.annotations = annotations;
      await Deno.writeTextFile(`${staging}/${ARCHIVE_FILES.config}`, JSON.stringify(config));
      await Deno.writeTextFile(`${staging}/${ARCHIVE_FILES.spec}`, JSON.stringify(spec));
      await Deno.writeTextFile(`${staging}/${ARCHIVE_FILES.networkStatus}`, "{}");
      await writeRootfsDiff(container, info, staging);
      opts.signal?.throwIfAborted();

      const archivePath = `${opts.workDir}/checkpoint-${name}-${stamp(checkpointedAt)}.tar`;
      await packArchive(staging, archivePath);
      let stats;
      if (captured.includes(ARCHIVE_FILES.statsDump)) {
        try {
          stats = parseCriuStats(await Deno.readFile(`${staging}/${ARCHIVE_FILES.statsDump}`));
        } catch {
          stats = undefined;
        }
      }
      const v = await this.version();
      return { archivePath, stats, runtime: v };
    } finally {
      await Deno.remove(staging, { recursive: true }).catch(() => {});
    }
  }

  /**
   * Restores `archivePath` into a new container named `opts.name`, created
   * from the archive's image (`config.dump` `rootfsImageName`, which must be
   * present in the engine) and process (`spec.dump`); returns its id.
   */
  async restore(archivePath: string, opts: RestoreOptions): Promise<{ containerId: string }> {
    const meta = await readArchive(archivePath);
    const image = meta.config.rootfsImageName || meta.config.rootfsImage;
    const what = `checkpoint "${archivePath}" into container "${opts.name}"`;
    if (!image) throw new Error(`Cannot restore ${what}: config.dump names no image`);
    try {
      await this.docker.getImage(image).inspect();
    } catch {
      throw new Error(`Cannot restore ${what}: image "${image}" is not present in the engine`);
    }
    const proc = (meta.spec.process ?? {}) as {
      args?: string[];
      env?: string[];
      cwd?: string;
      terminal?: boolean;
      user?: { uid?: number; gid?: number };
    };
    if (!proc.args?.length) {
      throw new Error(`Cannot restore ${what}: spec.dump has no process args`);
    }
    const tmp = await Deno.makeTempDir({ dir: opts.workDir, prefix: "lpm-restore-" });
    let container: Docker.Container | undefined;
    try {
      await unpackArchive(archivePath, tmp);
      opts.signal?.throwIfAborted();
      container = await this.docker.createContainer({
        name: opts.name,
        Image: image,
        Entrypoint: [proc.args[0]],
        Cmd: proc.args.slice(1),
        Env: proc.env,
        WorkingDir: proc.cwd,
        Tty: proc.terminal ?? false,
        User: proc.user ? `${proc.user.uid ?? 0}:${proc.user.gid ?? 0}` : undefined,
        Hostname: typeof meta.spec.hostname === "string" ? meta.spec.hostname : undefined,
        HostConfig: { NetworkMode: this.#opts.networkMode ?? "none" },
      });
      const diff = `${tmp}/${ARCHIVE_FILES.rootfsDiff}`;
      await applyRootfsDiff(container, {
        diffTar: (await exists(diff)) ? diff : undefined,
        deleted: meta.deletedFiles,
      });
      const cpName = `lpm-restore`;
      const store = `${await this.#dockerRoot()}/containers/${container.id}/checkpoints`;
      await Deno.mkdir(store, { recursive: true });
      const cp = await new Deno.Command("cp", {
        args: ["-a", `${tmp}/${ARCHIVE_FILES.checkpointDir}`, `${store}/${cpName}`],
        stderr: "piped",
      }).output();
      if (!cp.success) {
        throw new Error(
          `Cannot restore ${what}: copying the CRIU images failed: ${
            new TextDecoder().decode(cp.stderr).trim()
          }`,
        );
      }
      // Docker tars this directory into containerd's content store on start and
      // fails when that exact blob is still there (e.g. the checkpoint's own
      // upload, restored on the host that took it): a nonce file makes it unique.
      await Deno.writeTextFile(`${store}/${cpName}/.lpm-restore-${crypto.randomUUID()}`, "");
      opts.signal?.throwIfAborted();
      try {
        // `_body: {}` keeps docker-modem from also sending the query as a JSON body.
        await container.start({ _query: { checkpoint: cpName }, _body: {} } as never);
      } catch (err) {
        throw new Error(
          `Cannot restore ${what}: Docker/CRIU restore failed: ${(err as Error).message}`,
        );
      }
      return { containerId: container.id };
    } catch (err) {
      await container?.remove({ force: true }).catch(() => {});
      throw err;
    } finally {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  }
}

/** A minimal runtime spec when the bundle is not visible (process, root, hostname). */
function specFromInspect(info: Docker.ContainerInspectInfo): Record<string, unknown> {
  const args = [...(info.Config.Entrypoint as string[] | null ?? []), ...(info.Config.Cmd ?? [])];
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: info.Config.Tty,
      args,
      env: info.Config.Env,
      cwd: info.Config.WorkingDir || "/",
    },
    root: { path: "rootfs" },
    hostname: info.Config.Hostname,
    annotations: {},
  };
}

/** Creates the Docker driver (the agent's entry point to this module). */
export function createDockerDriver(opts: DockerDriverOptions): DockerDriver {
  return new DockerDriver(opts);
}
