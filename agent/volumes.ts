/**
 * emptyDir volumes that travel with a checkpoint. CRIU restores a process's
 * open files only if they exist on the target with the size they had at the
 * dump, and an emptyDir lives on the source node's disk (or tmpfs), so its
 * contents must arrive before the restored containers start.
 *
 * On the source node, right after a container's dump, the agent packs the
 * emptyDirs that container carries (each volume is carried by the first
 * container in spec order that mounts it) into a tar under `lpm-volumes/`,
 * and publishes a small image: a static busybox at `/lpm/busybox` plus that
 * tar. The restored pod gets an init container of that image that copies
 * `/lpm-volumes/.` into its emptyDirs mounted under `/lpm-mnt/`, so the data
 * is in place before the checkpointed containers are restored (init
 * containers run first). Everything rides on the registry, so it works
 * across nodes and clusters like the checkpoint images themselves.
 *
 * Consistency: the contents are read after the dump. As long as the runtime
 * resumes the source after dumping (the kubelet checkpoint API does), a
 * write between the dump and the copy is carried though the restored process
 * never made it; a file that changed size makes CRIU refuse the restore
 * ("has bad size"). Freezing the source from the dump on removes the window.
 * @module
 */

import {
  buildLayeredImage,
  parseReference,
  pushImage,
  RegistryClient,
  VOLUME_IMAGE,
  volumeImageCommand,
} from "../oci/mod.ts";
import { registryClientOptions } from "./image_oci.ts";
import type {
  CarriedVolumeImage,
  CheckpointJob,
  PushedImage,
  RegistrySettings,
  VolumeCarrier,
} from "./pipeline.ts";

/** Largest volume data carried by default (bytes). */
export const DEFAULT_MAX_VOLUME_BYTES = 1 << 30;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const POD_UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface PodShape {
  metadata?: { uid?: unknown };
  spec?: {
    volumes?: { name?: unknown; emptyDir?: unknown }[];
    containers?: { name?: unknown; volumeMounts?: { name?: unknown }[] }[];
  };
}

/**
 * The emptyDir volumes whose contents `container` carries: those it is the
 * first (in `spec.containers` order) to mount. Volumes that only init
 * containers mount are not carried (init containers run again on restore).
 */
export function carriedVolumeNames(pod: unknown, container: string): string[] {
  const spec = (pod as PodShape | undefined)?.spec;
  const list = <T>(x: T[] | undefined): T[] => Array.isArray(x) ? x : [];
  const emptyDirs = new Set(
    list(spec?.volumes).filter((v) => v?.emptyDir && typeof v.name === "string")
      .map((v) => v.name as string),
  );
  const owner = new Map<string, string>();
  for (const c of list(spec?.containers)) {
    for (const m of list(c?.volumeMounts)) {
      const n = m?.name;
      if (typeof n === "string" && emptyDirs.has(n) && !owner.has(n)) {
        owner.set(n, String(c.name));
      }
    }
  }
  return [...owner].filter(([, c]) => c === container).map(([v]) => v).sort();
}

/** The pod's uid from its JSON, validated (it becomes a path segment). */
export function podUid(pod: unknown): string {
  const uid = (pod as PodShape | undefined)?.metadata?.uid;
  if (typeof uid !== "string" || !POD_UID.test(uid)) {
    throw new Error(
      `The source pod's metadata.uid ${JSON.stringify(uid)} is not a pod uid: ` +
        "cannot locate its emptyDir volumes",
    );
  }
  return uid;
}

/** Options of {@linkcode captureVolumes}. */
export interface CaptureOptions {
  /** The kubelet root dir as mounted in the agent. */
  kubeletRoot: string;
  /** The pod's uid. */
  podUid: string;
  /** Volume names (emptyDir). */
  names: string[];
  /** Tar file to write. */
  outPath: string;
  /** Refuse more than this many bytes of data (default 1 GiB). */
  maxBytes?: number;
}

/**
 * The apparent size in bytes of the trees at `paths` (what `du -s -B1
 * --apparent-size -P` prints, summed: links are not followed), counted in
 * this process so that the agent's image needs no `du`. Stops counting once
 * past `limit`.
 */
export async function apparentSize(paths: string[], limit = Infinity): Promise<number> {
  let total = 0;
  const pending = [...paths];
  while (pending.length && total <= limit) {
    const p = pending.pop()!;
    const st = await Deno.lstat(p);
    total += st.isFile || st.isSymlink ? st.size : 0;
    if (st.isDirectory) {
      for await (const e of Deno.readDir(p)) pending.push(`${p}/${e.name}`);
    }
  }
  return total;
}

async function run(cmd: string, args: string[], what: string): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().slice(0, 500);
    throw new Error(`Cannot ${what}: ${cmd} exited ${out.code}: ${err}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/**
 * Packs the named emptyDirs of a pod into `outPath` (members under
 * `lpm-volumes/<name>/`, numeric owners, symlinks stored as links and never
 * followed). Returns the bytes of data (apparent size).
 */
export async function captureVolumes(opts: CaptureOptions): Promise<{ size: number }> {
  const max = opts.maxBytes ?? DEFAULT_MAX_VOLUME_BYTES;
  if (!POD_UID.test(opts.podUid)) throw new Error(`Bad pod uid "${opts.podUid}"`);
  const base = `${
    opts.kubeletRoot.replace(/\/$/, "")
  }/pods/${opts.podUid}/volumes/kubernetes.io~empty-dir`;
  for (const n of opts.names) {
    if (!DNS_LABEL.test(n)) throw new Error(`Bad volume name ${JSON.stringify(n)}`);
    const st = await Deno.lstat(`${base}/${n}`).catch(() => undefined);
    if (!st?.isDirectory) {
      throw new Error(
        `emptyDir volume "${n}" is not a directory at "${base}/${n}" on this node ` +
          `(is the kubelet root dir "${opts.kubeletRoot}" mounted in the agent?)`,
      );
    }
  }
  const size = await apparentSize(opts.names.map((n) => `${base}/${n}`), max);
  if (size > max) {
    throw new Error(
      `emptyDir volumes ${opts.names.map((n) => `"${n}"`).join(", ")} hold ${size} bytes, ` +
        `more than the ${max} bytes lpm carries with a checkpoint`,
    );
  }
  await run("tar", [
    "--numeric-owner",
    "--sparse",
    "--xattrs",
    "-C",
    base,
    // Member and hard-link names get the prefix; symlink targets stay as they are.
    "--transform",
    `s,^,${VOLUME_IMAGE.dataDir.slice(1)}/,S`,
    "-cf",
    opts.outPath,
    "--",
    ...opts.names,
  ], "pack the emptyDir volumes");
  return { size };
}

/** Writes the busybox layer of the volume image (busybox at `VOLUME_IMAGE.busybox`) to `outPath`. */
export async function busyboxLayer(busybox: string, workDir: string, outPath: string) {
  const st = await Deno.stat(busybox).catch(() => undefined);
  if (!st?.isFile) {
    throw new Error(
      `Cannot build the volume image: no static busybox at "${busybox}" (--busybox; Debian's busybox-static)`,
    );
  }
  const stage = `${workDir}/busybox-layer`;
  const target = `${stage}${VOLUME_IMAGE.busybox}`;
  await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
  await Deno.copyFile(busybox, target);
  await Deno.chmod(target, 0o755);
  await run("tar", [
    "--numeric-owner",
    "--owner=0",
    "--group=0",
    "--mtime=@0",
    "-C",
    stage,
    "-cf",
    outPath,
    ".",
  ], "pack busybox for the volume image");
  await Deno.remove(stage, { recursive: true });
}

/** Options of {@linkcode publishVolumeImage}. */
export interface PublishVolumeOptions {
  /** The class's registry. */
  registry: RegistrySettings;
  /** Tag the image gets at `tag()`. */
  tag: string;
  /** Work dir (layout and layers; removed by the caller). */
  workDir: string;
  /** Static busybox on this node. */
  busybox: string;
  /** Manifest annotations. */
  annotations?: Record<string, string>;
  /** Cancels the push. */
  signal?: AbortSignal;
}

/**
 * Builds the volume image of `dataTar` (from {@linkcode captureVolumes}) and
 * pushes it by digest; `tag()` makes it reachable by name (the last publish step).
 */
export async function publishVolumeImage(
  dataTar: string,
  opts: PublishVolumeOptions,
): Promise<PushedImage> {
  const bb = `${opts.workDir}/busybox-layer.tar`;
  await busyboxLayer(opts.busybox, opts.workDir, bb);
  const image = await buildLayeredImage([bb, dataTar], {
    layoutDir: `${opts.workDir}/volume-image`,
    config: { Entrypoint: volumeImageCommand(), WorkingDir: "/" },
    annotations: opts.annotations,
  });
  const r = opts.registry;
  const clientOpts = registryClientOptions(r);
  const target = `${r.repository}:${opts.tag}`;
  const client = new RegistryClient(parseReference(target).host, clientOpts);
  try {
    const pushed = await pushImage(image.layoutDir, target, {
      ...clientOpts,
      ref: image.manifest.digest,
      client,
      skipTag: true,
      signal: opts.signal,
    });
    const bytes = await Deno.readFile(
      `${image.layoutDir}/blobs/sha256/${pushed.digest.slice("sha256:".length)}`,
    );
    return {
      digest: pushed.digest,
      reference: pushed.reference,
      tag: async () => {
        try {
          await client.putManifest(parseReference(target).repository, opts.tag, bytes);
        } finally {
          client.close();
        }
      },
    };
  } catch (err) {
    client.close();
    throw new Error(`Cannot push the volume image: ${(err as Error).message}`);
  }
}

/** Options of {@linkcode createVolumeCarrier}. */
export interface VolumeCarrierOptions {
  /** The kubelet root dir as mounted in the agent. */
  kubeletRoot: string;
  /** Static busybox on this node (default `/bin/busybox`, Debian's busybox-static). */
  busybox?: string;
  /** Largest volume data carried (default 1 GiB). */
  maxBytes?: number;
}

/** The agent's {@linkcode VolumeCarrier} for pods on a kubelet node. */
export function createVolumeCarrier(o: VolumeCarrierOptions): VolumeCarrier {
  return {
    async carry(job: CheckpointJob, pod: unknown, c): Promise<CarriedVolumeImage | undefined> {
      const names = carriedVolumeNames(pod, job.container);
      if (names.length === 0) return undefined;
      const what = `emptyDir volumes ${names.map((n) => `"${n}"`).join(", ")}`;
      if (!c.registry) {
        throw new Error(`Cannot carry ${what}: the storage class has no registry`);
      }
      if (c.encrypted) {
        // Refused before anything is read: a tmpfs emptyDir is memory.
        throw new Error(
          `Cannot carry ${what} through a class with spec.encryption: lpm does not encrypt ` +
            "volume images yet, and they would leave the node in plaintext. Use a class " +
            "without spec.encryption for this pod, or keep that data out of emptyDirs",
        );
      }
      const dir = `${c.workDir}/volumes`;
      await Deno.mkdir(dir, { recursive: true });
      const data = `${dir}/data.tar`;
      const { size } = await captureVolumes({
        kubeletRoot: o.kubeletRoot,
        podUid: podUid(pod),
        names,
        outPath: data,
        maxBytes: o.maxBytes,
      });
      const image = await publishVolumeImage(data, {
        registry: c.registry,
        tag: c.tag,
        workDir: dir,
        busybox: o.busybox ?? "/bin/busybox",
        annotations: c.annotations,
        signal: c.signal,
      });
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      return { names, size, image };
    },
  };
}
