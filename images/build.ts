/**
 * Builds lpm's controller and agent images with lpm's own `oci/` writer: no
 * Docker, no base image, nothing fetched at run time.
 *
 * `deno compile` cannot work on these machines (it downloads `denort` from
 * dl.deno.land, which is unreachable, and the `deno` binary the npm package
 * ships ignores an embedded payload), so an image carries the `deno` binary
 * the bootstrap installed, lpm's source, and a read-only DENO_DIR holding the
 * npm packages the entry points need, run with `--cached-only`:
 *
 *   runtime  deno + the libraries it loads (ldd), GNU tar (the archive code
 *            runs it) and openssl (the controller issues the agents'
 *            certificates) with theirs (its libcrypto.so.3 is also the
 *            agent's AES-GCM: storage/aes_gcm.ts), CA certificates,
 *            passwd/group with a non-root user 65532, /tmp
 *   deps     /deno-dir/npm: `deno cache` of the entry points into an empty
 *            DENO_DIR, without the registry.json packuments (they change
 *            over time; with deno.lock, --cached-only never reads them)
 *   app      /app: deno.json, deno.lock and the product folders (no tests)
 *   tools    agent only: busybox-static (copied into the images that carry
 *            emptyDir volumes) and containerd's `ctr` (the target agent
 *            names a decrypted checkpoint image with it once containerd has
 *            pulled it from the agent's loopback: agent/image_loopback.ts)
 *
 * Reproducible: every layer is a tar of a staging tree with sorted names,
 * owner 0 and mtime 0, gzip without a header time; the image config's
 * `created` is the commit's time. The same commit and the same host files
 * (deno, libraries, certificates) give the same digests. Each layer is
 * cached by the hash of its inputs in one OCI layout under
 * `~/.cache/lpm/lpm-images/`, so a rebuild of a new commit redoes only the
 * app layer (about 1 MiB).
 * @module
 */
import { Sha256Counter, sha256Hex } from "../base/sha256.ts";
import { CONTROLLER_V8_FLAGS } from "../controllers/v8_flags.ts";
import { ALLOCATOR_ENV } from "../base/allocator_env.ts";
import {
  CONFIG_MEDIA_TYPE,
  type Descriptor,
  hostArchitecture,
  type ImageManifest,
  layerMediaType,
  MANIFEST_MEDIA_TYPE,
  OciLayout,
  reproducibleTar,
} from "../oci/mod.ts";
import { compressStream } from "../oci/compress.ts";
import { DigestStream, fileStream } from "../oci/digest.ts";
import {
  hashFiles,
  type HostFile,
  mkdirs,
  programWithLibraries,
  stageFiles,
  uniqueFiles,
} from "./_host_files.ts";

/** Bumped when what a layer holds changes without its inputs changing. */
const BUILDER_VERSION = "1";

const REPO_ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** Folders of product code the images carry (no tests, no local environment, no hack/). */
export const APP_FOLDERS = [
  "std",
  "base",
  "confine",
  "api",
  "kube",
  "archive",
  "storage",
  "contract",
  "oci",
  "agent",
  "controllers",
] as const;

/** The two images and what runs in them. */
export const IMAGES = {
  controller: { entry: "controllers/main.ts", user: "65532:65532" },
  // Root: it reads archives the kubelet wrote as root and talks to the runtime socket.
  agent: { entry: "agent/main.ts", user: "0:0" },
} as const;

/** Name of one of lpm's images. */
export type ImageName = keyof typeof IMAGES;

/** Where the read-only DENO_DIR sits in the images. */
export const DENO_DIR = "/deno-dir";

/** The command an image runs (its Entrypoint); arguments follow. */
export function entrypoint(name: ImageName): string[] {
  return [
    "/usr/bin/deno",
    "run",
    "--cached-only",
    "--no-prompt",
    "--allow-all",
    "--config=/app/deno.json",
    ...(name === "controller" ? [`--v8-flags=${CONTROLLER_V8_FLAGS}`] : []),
    `/app/${IMAGES[name].entry}`,
  ];
}

/** Options of {@linkcode buildLpmImages}. */
export interface BuildImagesOptions {
  /** Take the source from the working tree (tracked and new, not ignored files) instead of the commit. */
  worktree?: boolean;
  /** Commit to build (default HEAD); ignored with `worktree`. */
  revision?: string;
  /** Cache directory (default `~/.cache/lpm/lpm-images`). */
  cacheDir?: string;
  /** Progress lines. */
  onProgress?: (msg: string) => void;
}

/** One built image. */
export interface BuiltImage {
  /** controller or agent. */
  name: ImageName;
  /** Manifest descriptor (its digest is the image's). */
  manifest: Descriptor;
  /** Compressed size: config and layers, as a registry stores them. */
  size: number;
  /** Uncompressed size of the layers (the root filesystem). */
  unpackedSize: number;
}

/** What {@linkcode buildLpmImages} built. */
export interface BuildImagesResult {
  /** The OCI layout holding both images (ref names `controller`, `agent`). */
  layoutDir: string;
  /** The images. */
  images: BuiltImage[];
  /** The commit built (with `-dirty` for a changed working tree). */
  revision: string;
  /** lpm's version (deno.json). */
  version: string;
  /** Tag both images get: `<version>-<revision, 12 characters>`. */
  tag: string;
}

/** A layer as the cache records it. */
interface CachedLayer {
  digest: string;
  size: number;
  diffId: string;
  unpackedSize: number;
}

const decoder = new TextDecoder();

async function git(args: string[]): Promise<string> {
  const out = await new Deno.Command("git", {
    args,
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!out.success) {
    throw new Error(`Command "git ${args.join(" ")}" failed: ${decoder.decode(out.stderr).trim()}`);
  }
  return decoder.decode(out.stdout).trim();
}

/** The build context: cache, layout, and the layer cache index. */
class LayerCache {
  private constructor(
    readonly dir: string,
    readonly layout: OciLayout,
    private index: Record<string, CachedLayer>,
  ) {}

  static async open(dir: string): Promise<LayerCache> {
    await Deno.mkdir(dir, { recursive: true });
    const layout = await OciLayout.open(`${dir}/layout`, { create: true });
    const index = await Deno.readTextFile(`${dir}/layers.json`).then(JSON.parse, () => ({}));
    return new LayerCache(dir, layout, index);
  }

  /** The cached layer of `key` when its blob is still in the layout. */
  async get(key: string): Promise<CachedLayer | undefined> {
    const l = this.index[key];
    return l && await this.layout.hasBlob(l.digest, l.size) ? l : undefined;
  }

  /** Tars `root`, gzips it into the layout and records it under `key`. */
  async put(key: string, root: string): Promise<CachedLayer> {
    const tar = `${this.dir}/.layer-${crypto.randomUUID()}.tar`;
    try {
      await reproducibleTar(root, tar);
      const diff = new DigestStream();
      const blob = await this.layout.writeBlob(
        compressStream((await fileStream(tar)).pipeThrough(diff), "gzip"),
      );
      const layer = { ...blob, diffId: diff.digest, unpackedSize: diff.size };
      this.index[key] = layer;
      const tmp = `${this.dir}/.layers-${crypto.randomUUID()}.json`;
      await Deno.writeTextFile(tmp, JSON.stringify(this.index, null, 1));
      await Deno.rename(tmp, `${this.dir}/layers.json`);
      return layer;
    } finally {
      await Deno.remove(tar).catch(() => {});
    }
  }

  /** The layer of `key`, built by `stage(root)` into a fresh staging root on a miss. */
  async layer(
    key: string,
    stage: (root: string) => Promise<void>,
  ): Promise<CachedLayer & { cached: boolean }> {
    const hit = await this.get(key);
    if (hit) return { ...hit, cached: true };
    const root = await Deno.makeTempDir({ prefix: "lpm-image-layer-" });
    try {
      await Deno.chmod(root, 0o755);
      await stage(root);
      return { ...await this.put(key, root), cached: false };
    } finally {
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  }
}

const PASSWD = "root:x:0:0:root:/root:/sbin/nologin\nlpm:x:65532:65532:lpm:/tmp:/sbin/nologin\n";
const GROUP = "root:x:0:\nlpm:x:65532:\n";

async function runtimeFiles(): Promise<HostFile[]> {
  const deno = await Deno.realPath(Deno.execPath());
  return uniqueFiles([
    ...await programWithLibraries(deno, "/usr/bin/deno"),
    ...await programWithLibraries("/usr/bin/tar", "/usr/bin/tar"),
    // The controller issues the agents' certificates with the openssl CLI (contract/pki.ts).
    ...await programWithLibraries("/usr/bin/openssl", "/usr/bin/openssl"),
    { dest: "/usr/lib/ssl/openssl.cnf", src: "/usr/lib/ssl/openssl.cnf", mode: 0o644 },
    {
      dest: "/etc/ssl/certs/ca-certificates.crt",
      src: "/etc/ssl/certs/ca-certificates.crt",
      mode: 0o644,
    },
  ]);
}

/** The first `name` on PATH, or undefined. */
async function onPath(name: string): Promise<string | undefined> {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").filter(Boolean)) {
    const st = await Deno.stat(`${dir}/${name}`).catch(() => undefined);
    if (st?.isFile && (st.mode ?? 0) & 0o111) return `${dir}/${name}`;
  }
  return undefined;
}

/**
 * The agent's tools: busybox-static and containerd's ctr with those of its
 * libraries the runtime layer (`runtime`) lacks (usually none: libc).
 */
async function toolFiles(runtime: HostFile[]): Promise<HostFile[]> {
  const ctr = await onPath("ctr");
  if (!ctr) {
    throw new Error(
      "The agent image needs containerd's ctr (it names decrypted checkpoint images) and none " +
        "is on PATH: put ctr 2.x on PATH (the bootstrap's is in ~/.cache/lpm/bin)",
    );
  }
  const inRuntime = new Set(runtime.map((f) => f.dest));
  return uniqueFiles([
    { dest: "/usr/bin/busybox", src: "/bin/busybox", mode: 0o755 },
    ...(await programWithLibraries(await Deno.realPath(ctr), "/usr/bin/ctr"))
      .filter((f) => !inRuntime.has(f.dest)),
  ]);
}

async function stageRuntime(root: string, files: HostFile[]): Promise<void> {
  await stageFiles(root, files);
  for (const d of ["bin", "sbin", "lib", "lib64"]) {
    await mkdirs(root, `/usr/${d}`);
    await Deno.symlink(`usr/${d}`, `${root}/${d}`);
  }
  await mkdirs(root, "/etc");
  await Deno.writeTextFile(`${root}/etc/passwd`, PASSWD);
  await Deno.writeTextFile(`${root}/etc/group`, GROUP);
  for (const f of ["passwd", "group"]) await Deno.chmod(`${root}/etc/${f}`, 0o644);
  await mkdirs(root, "/tmp");
  await Deno.chmod(`${root}/tmp`, 0o1777);
  await mkdirs(root, DENO_DIR);
}

/** Fills `${root}/deno-dir` with the npm packages the entry points need. */
async function stageDeps(root: string): Promise<void> {
  const denoDir = `${root}${DENO_DIR}`;
  await mkdirs(root, DENO_DIR);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["cache", "--frozen", ...Object.values(IMAGES).map((i) => i.entry)],
    cwd: REPO_ROOT,
    env: { DENO_DIR: denoDir, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `Cannot cache lpm's npm packages: deno cache failed: ${decoder.decode(out.stderr)}`,
    );
  }
  // Only the package files: packuments and analysis caches vary with time and paths.
  for await (const e of Deno.readDir(denoDir)) {
    if (e.name !== "npm") await Deno.remove(`${denoDir}/${e.name}`, { recursive: true });
  }
  await removeNamed(`${denoDir}/npm`, "registry.json");
  await normalizeModes(denoDir);
}

async function removeNamed(dir: string, name: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory) await removeNamed(`${dir}/${e.name}`, name);
    else if (e.name === name) await Deno.remove(`${dir}/${e.name}`);
  }
}

/** Directories 0755, files 0644 or 0755 (executable), whatever umask made them. */
async function normalizeModes(dir: string): Promise<void> {
  await Deno.chmod(dir, 0o755);
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) await normalizeModes(p);
    else if (e.isFile) await Deno.chmod(p, (await Deno.stat(p)).mode! & 0o100 ? 0o755 : 0o644);
  }
}

/** The source files the images carry, as (path in the repo, content source). */
async function appFiles(opts: BuildImagesOptions, revision: string): Promise<string[]> {
  const list = opts.worktree
    ? await git([
      "ls-files",
      "-z",
      "--cached",
      "--others",
      "--exclude-standard",
      "--",
      "deno.json",
      "deno.lock",
      ...APP_FOLDERS,
    ])
    : await git([
      "ls-tree",
      "-r",
      "-z",
      "--name-only",
      revision,
      "--",
      "deno.json",
      "deno.lock",
      ...APP_FOLDERS,
    ]);
  return list.split("\0").filter((p) => p && !/_test\.ts$/.test(p)).sort();
}

async function appKey(
  files: string[],
  opts: BuildImagesOptions,
  revision: string,
): Promise<string> {
  if (!opts.worktree) {
    return sha256Hex(
      `app\0${BUILDER_VERSION}\0${await git(["rev-parse", `${revision}^{tree}`])}\0${
        files.join("\0")
      }`,
    );
  }
  const h = new Sha256Counter().update(new TextEncoder().encode(`app\0${BUILDER_VERSION}\0`));
  for (const f of files) {
    const bytes = await Deno.readFile(`${REPO_ROOT}/${f}`).catch(() => undefined);
    h.update(new TextEncoder().encode(`${f}\0${bytes?.length ?? -1}\0`));
    if (bytes) h.update(bytes);
  }
  return h.hex();
}

async function stageApp(
  root: string,
  files: string[],
  opts: BuildImagesOptions,
  revision: string,
): Promise<void> {
  await mkdirs(root, "/app");
  for (const f of files) {
    const dest = `${root}/app/${f}`;
    await mkdirs(root, `/app/${f.slice(0, f.lastIndexOf("/") + 1)}`);
    if (opts.worktree) {
      const ok = await Deno.copyFile(`${REPO_ROOT}/${f}`, dest).then(() => true, () => false);
      if (!ok) continue; // deleted in the working tree
    } else {
      await Deno.writeFile(dest, await gitBlob(revision, f));
    }
  }
  await normalizeModes(`${root}/app`);
}

async function gitBlob(revision: string, path: string): Promise<Uint8Array> {
  const out = await new Deno.Command("git", {
    args: ["show", `${revision}:${path}`],
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`Cannot read "${path}" at ${revision}: ${decoder.decode(out.stderr)}`);
  }
  return out.stdout;
}

/** What the images are labelled with (OCI annotations, and labels in the config). */
async function imageAnnotations(
  name: ImageName,
  revision: string,
  version: string,
  created: string,
): Promise<Record<string, string>> {
  const source = await git(["config", "--get", "remote.origin.url"]).catch(() => "");
  return {
    "org.opencontainers.image.title": `lpm-${name}`,
    "org.opencontainers.image.description": name === "agent"
      ? "lpm node agent: checkpoints, freezes and restores pods on its node"
      : "lpm controller manager: reconciles PodMigration and the other lpm.my.domain kinds",
    "org.opencontainers.image.version": version,
    "org.opencontainers.image.revision": revision,
    "org.opencontainers.image.created": created,
    // No remote configured (a local clone): the source is named by its revision only.
    "org.opencontainers.image.source": source || `lpm@${revision}`,
  };
}

async function writeImage(
  cache: LayerCache,
  name: ImageName,
  layers: CachedLayer[],
  annotations: Record<string, string>,
): Promise<BuiltImage> {
  const config = {
    created: annotations["org.opencontainers.image.created"],
    architecture: hostArchitecture(),
    os: "linux",
    config: {
      User: IMAGES[name].user,
      Entrypoint: entrypoint(name),
      WorkingDir: "/app",
      Env: [
        "PATH=/usr/bin:/bin",
        `DENO_DIR=${DENO_DIR}`,
        "DENO_NO_UPDATE_CHECK=1",
        "DENO_NO_PROMPT=1",
        // The system store too: a cluster's private CA can be added to the image's bundle.
        "DENO_TLS_CA_STORE=mozilla,system",
        "NO_COLOR=1",
        "HOME=/tmp",
        // glibc's malloc tuned as in the local environment (base/allocator_env.ts).
        ...Object.entries(ALLOCATOR_ENV).map(([k, v]) => `${k}=${v}`),
      ],
      Labels: annotations,
    },
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    history: layers.map(() => ({
      created: annotations["org.opencontainers.image.created"],
      created_by: "lpm images",
    })),
  };
  const configDesc = await cache.layout.writeBytes(
    new TextEncoder().encode(JSON.stringify(config)),
  );
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MANIFEST_MEDIA_TYPE,
    config: { mediaType: CONFIG_MEDIA_TYPE, ...configDesc },
    layers: layers.map((l) => ({
      mediaType: layerMediaType("gzip"),
      digest: l.digest,
      size: l.size,
    })),
    annotations,
  };
  const desc = await cache.layout.writeBytes(new TextEncoder().encode(JSON.stringify(manifest)));
  const descriptor: Descriptor = { mediaType: MANIFEST_MEDIA_TYPE, ...desc };
  await cache.layout.addManifest(descriptor, name);
  return {
    name,
    manifest: descriptor,
    size: configDesc.size + layers.reduce((n, l) => n + l.size, 0),
    unpackedSize: layers.reduce((n, l) => n + l.unpackedSize, 0),
  };
}

/** Builds (or takes from the cache) the controller and agent images. */
export async function buildLpmImages(opts: BuildImagesOptions = {}): Promise<BuildImagesResult> {
  const say = opts.onProgress ?? (() => {});
  const cacheDir = opts.cacheDir ??
    `${Deno.env.get("LPM_CACHE") ?? `${Deno.env.get("HOME")}/.cache/lpm`}/lpm-images`;
  const cache = await LayerCache.open(cacheDir);
  const commit = await git(["rev-parse", opts.revision ?? "HEAD"]);
  const dirty = opts.worktree &&
    (await git(["status", "--porcelain", "--", "deno.json", "deno.lock", ...APP_FOLDERS])) !== "";
  const revision = dirty ? `${commit}-dirty` : commit;
  const version = JSON.parse(decoder.decode(await gitBlob(commit, "deno.json"))).version as string;
  const created = new Date(await git(["log", "-1", "--format=%cI", commit])).toISOString();

  const runtime = await runtimeFiles();
  const runtimeLayer = await cache.layer(
    sha256Hex(`runtime\0${BUILDER_VERSION}\0${await hashFiles(runtime)}`),
    (root) => stageRuntime(root, runtime),
  );
  say(
    `runtime layer ${runtimeLayer.digest.slice(7, 19)} ${
      runtimeLayer.cached ? "(cached)" : "built"
    }`,
  );
  const lock = await Deno.readTextFile(`${REPO_ROOT}/deno.lock`);
  // Only the import map decides the packages (a new task must not refetch them).
  const imports = JSON.stringify(
    JSON.parse(await Deno.readTextFile(`${REPO_ROOT}/deno.json`)).imports,
  );
  const depsLayer = await cache.layer(
    sha256Hex(
      `deps\0${BUILDER_VERSION}\0${Deno.version.deno}\0${lock}\0${imports}\0${
        Object.values(IMAGES).map((i) => i.entry)
      }`,
    ),
    stageDeps,
  );
  say(`deps layer ${depsLayer.digest.slice(7, 19)} ${depsLayer.cached ? "(cached)" : "built"}`);
  const files = await appFiles(opts, commit);
  const appLayer = await cache.layer(
    await appKey(files, opts, commit),
    (root) => stageApp(root, files, opts, commit),
  );
  say(`app layer ${appLayer.digest.slice(7, 19)} ${appLayer.cached ? "(cached)" : "built"}`);
  const tools = await toolFiles(runtime);
  const toolsLayer = await cache.layer(
    sha256Hex(`tools\0${BUILDER_VERSION}\0${await hashFiles(tools)}`),
    (root) => stageFiles(root, tools),
  );

  const images: BuiltImage[] = [];
  for (const name of Object.keys(IMAGES) as ImageName[]) {
    const layers = name === "agent"
      ? [runtimeLayer, depsLayer, appLayer, toolsLayer]
      : [runtimeLayer, depsLayer, appLayer];
    images.push(
      await writeImage(
        cache,
        name,
        layers,
        await imageAnnotations(name, revision, version, created),
      ),
    );
  }
  return {
    layoutDir: cache.layout.dir,
    images,
    revision,
    version,
    tag: `${version}-${revision.slice(0, 12)}${dirty ? "-dirty" : ""}`,
  };
}
