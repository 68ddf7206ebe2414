/**
 * The three sources of a PodRestore, each resolved in two steps: `describe`
 * reads what the checkpoint says about itself (source pod, container,
 * architecture, runtime, CRIU version) without moving its bytes, so the
 * compatibility checks run first; `materialize` then makes every checkpoint
 * image pullable by this cluster's nodes and returns them by container.
 *
 * - storage: `<container>.checkpoint.json` from the class's store (outside
 *   data: bounded, its container name a DNS label, its archive key inside
 *   the checkpoint's prefix); the archive is downloaded to a work file named
 *   by us (sha256 and size checked before anything reads it), rebuilt as an
 *   image and pushed into the class's registry. Work files go on every path.
 * - image: the manifests' annotations (`lpm.my.domain/pod-spec` and the
 *   checkpoint annotations); the images are used as they are.
 * - layout: an OCI layout directory or tarball the controller can read; its
 *   image is pushed into the default class's registry.
 * @module
 */
import type { CheckpointStorageClass, PodRestore } from "../api/mod.ts";
import { isDnsLabel, LIMITS, limitStream, readBounded } from "../confine/mod.ts";
import {
  buildCheckpointImage,
  buildEncryptedCheckpointImage,
  checkpointAnnotations,
  describeCheckpointImage,
  DigestStream,
  isEncryptedLayer,
  OciLayout,
  pushImage,
  readLayoutTarball,
  RegistryClient,
  type RegistryClientOptions,
} from "../oci/mod.ts";
import { createStore, decodeSecretData, keyProblem } from "../storage/mod.ts";
import type { ReconcilerDeps } from "./deps.ts";
import {
  checkpointArchitecture,
  type CheckpointMetadata,
  metadataKey,
} from "./pod_restore_compat.ts";
import { registryAccess } from "./checkpoint_data.ts";

/** A terminal failure with a condition reason. */
export class RestoreFailure extends Error {
  /** Condition reason. */
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** A source whose checkpoint has been described but not yet imported. */
export interface DescribedSource {
  /** What the checkpoint says about itself (`container` = the first restored container). */
  meta: CheckpointMetadata;
  /**
   * Makes the images pullable here; resolves with image by container name, a
   * summary, and the containers whose images are encrypted (their target
   * agent must decrypt them before the pod starts).
   */
  materialize(): Promise<{ images: Record<string, string>; summary: string; encrypted?: string[] }>;
  /** Removes temporary files. */
  close(): Promise<void>;
}

/** Options of {@linkcode describeSource}. */
export interface DescribeOptions {
  /** Directory the work directories are made in (default: the system's temp directory). */
  tmpDir?: string;
}

/** Describes the source of `pr` (exactly one of storage, image, layout is set). */
export async function describeSource(
  deps: ReconcilerDeps,
  pr: PodRestore,
  opts: DescribeOptions = {},
): Promise<DescribedSource> {
  const src = pr.spec.source;
  if (src.storage) return await describeStorage(deps, pr, opts);
  if (src.image) return await describeImages(deps, src.image.references);
  return await describeLayout(deps, pr, src.layout!.path, opts);
}

const hostOf = (repository: string) => repository.split("/")[0];

/** The access settings for `host`: those of the class whose registry lives there, else defaults. */
async function accessForHost(deps: ReconcilerDeps, host: string): Promise<RegistryClientOptions> {
  const classes = await deps.lpm.list<CheckpointStorageClass>("checkpointstorageclasses");
  const cls = classes.find((c) =>
    c.spec.registry?.repository && hostOf(c.spec.registry.repository) === host
  );
  return cls ? await registryAccess(deps, cls) : {};
}

/** The class a layout is pushed into: the default one, which must have a registry. */
async function defaultRegistryClass(deps: ReconcilerDeps): Promise<CheckpointStorageClass> {
  const classes = await deps.lpm.list<CheckpointStorageClass>("checkpointstorageclasses");
  const cls = classes.find((c) => c.spec.default);
  if (!cls) {
    throw new RestoreFailure(
      "NoRegistry",
      "No default CheckpointStorageClass in this cluster: a layout source is pushed into the " +
        "default class's registry",
    );
  }
  if (!cls.spec.registry?.repository) {
    throw new RestoreFailure(
      "NoRegistry",
      `Default CheckpointStorageClass "${cls.metadata?.name}" has no registry to import into`,
    );
  }
  return cls;
}

function tagOf(pr: PodRestore): string {
  return `restore-${pr.metadata?.uid?.replaceAll("-", "").slice(0, 12) ?? "x"}`;
}

async function getClass(deps: ReconcilerDeps, name: string): Promise<CheckpointStorageClass> {
  const cls = await deps.lpm.get<CheckpointStorageClass>("checkpointstorageclasses", "", name);
  if (!cls) {
    throw new RestoreFailure(
      "StorageClassNotFound",
      `CheckpointStorageClass "${name}" does not exist in this cluster: create one ` +
        "that points at the storage holding the checkpoint",
    );
  }
  return cls;
}

async function describeStorage(
  deps: ReconcilerDeps,
  pr: PodRestore,
  opts: DescribeOptions,
): Promise<DescribedSource> {
  const { storageClassName, key } = pr.spec.source.storage!;
  const cls = await getClass(deps, storageClassName);
  if (!cls.spec.registry?.repository) {
    throw new RestoreFailure(
      "NoRegistry",
      `CheckpointStorageClass "${storageClassName}" has no registry: the checkpoint image ` +
        "must be imported into a registry this cluster's nodes can pull from",
    );
  }
  let secret: Record<string, string> | undefined;
  const ref = cls.spec.credentialsSecretRef;
  if (ref) {
    secret = decodeSecretData(
      await deps.core.readNamespacedSecret({ name: ref.name, namespace: ref.namespace }),
    );
  }
  const store = createStore(cls.spec, { secret });
  const work = await Deno.makeTempDir({ dir: opts.tmpDir, prefix: "lpm-restore-" });
  const close = async () => {
    store.close?.();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  };
  try {
    const metas: { key: string; meta: CheckpointMetadata }[] = [];
    for (const mKey of await metadataKeys(store, key, storageClassName)) {
      let doc: unknown;
      try {
        const bytes = await readBounded(
          await store.get(mKey),
          LIMITS.jsonBytes,
          `checkpoint metadata "${mKey}"`,
        );
        doc = JSON.parse(new TextDecoder().decode(bytes));
      } catch (err) {
        throw new RestoreFailure(
          "MetadataUnavailable",
          `Cannot read checkpoint metadata "${mKey}" from class "${storageClassName}": ${
            (err as Error).message
          }`,
        );
      }
      metas.push({ key: mKey, meta: checkStoredMetadata(doc, mKey) });
    }
    const meta = mergeImageMetadata(
      metas.map((m) => ({ containerName: m.meta.container!, image: m.key, meta: m.meta })),
    );
    const materialize = async () => {
      const images: Record<string, string> = {};
      const summaries: string[] = [];
      const encrypted: string[] = [];
      for (const [i, { key: mKey, meta: m }] of metas.entries()) {
        const archiveKey = m.archive?.key ?? mKey.replace(/\.checkpoint\.json$/, ".tar");
        // Named by us: nothing from the metadata becomes a path.
        const archive = `${work}/archive-${i}.tar`;
        let img;
        let got: string;
        try {
          got = await downloadArchive(store, archiveKey, archive, m.archive);
          if (m.encryption) encrypted.push(m.container!);
          img = m.encryption
            ? await encryptedImage(archive, m, `${work}/layout`)
            : await buildCheckpointImage(archive, {
              containerName: m.container,
              layoutDir: `${work}/layout`,
              refName: m.container,
              source: { pod: m.pod, namespace: m.namespace, node: m.node },
              runtime: m.runtime,
              architecture: m.architecture,
              // The rebuilt image describes itself like the agent's: it can be restored from alone.
              podSpec: JSON.stringify(m.sourcePod),
            });
        } catch (err) {
          if (err instanceof RestoreFailure) throw err;
          throw new RestoreFailure(
            "InvalidArchive",
            `Cannot import archive "${archiveKey}": ${(err as Error).message}`,
          );
        } finally {
          await Deno.remove(archive).catch(() => {});
        }
        const repository = cls.spec.registry!.repository;
        const pushed = await pushImage(
          img,
          `${repository}:${tagOf(pr)}-${m.container}`,
          await registryAccess(deps, cls),
        );
        const image = `${repository}@${pushed.digest}`;
        images[m.container!] = image;
        summaries.push(`Archive "${archiveKey}" (sha256 ${got}) imported as "${image}"`);
      }
      return { images, summary: summaries.join("; "), encrypted };
    };
    return { meta, materialize, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * Downloads `archiveKey` to `path`, checking the size and sha256 the
 * metadata recorded before anything reads the archive (the store also
 * checks its own digest while streaming); returns the sha256 hex. The
 * file is removed when a check fails.
 */
async function downloadArchive(
  store: ReturnType<typeof createStore>,
  archiveKey: string,
  path: string,
  recorded: CheckpointMetadata["archive"],
): Promise<string> {
  const hash = new DigestStream();
  const f = await Deno.open(path, { write: true, createNew: true });
  const max = recorded?.size ?? LIMITS.entryBytes;
  try {
    await limitStream(await store.get(archiveKey), max, `archive "${archiveKey}"`)
      .pipeThrough(hash).pipeTo(f.writable);
    if (recorded?.size !== undefined && hash.size !== recorded.size) {
      throw new RestoreFailure(
        "SizeMismatch",
        `Archive "${archiveKey}" is ${hash.size} bytes but its metadata records ${recorded.size}`,
      );
    }
    const got = hash.digest.replace(/^sha256:/, "");
    const want = recorded?.sha256?.replace(/^sha256:/, "");
    if (want && want !== got) {
      throw new RestoreFailure(
        "DigestMismatch",
        `Archive "${archiveKey}" has sha256 ${got} but its metadata records ${want}`,
      );
    }
    return got;
  } catch (err) {
    await Deno.remove(path).catch(() => {});
    throw err;
  }
}

/**
 * Checks stored checkpoint metadata (outside data) before any of it is
 * used: `container` must be a DNS label (it names images and refs),
 * `archive.key` a valid key next to the metadata (`<ns>/<pod>/<id>/`),
 * `archive.sha256` 64 hex digits, `archive.size` a non-negative integer,
 * and the source pod spec present. Throws a {@linkcode RestoreFailure}
 * naming the field.
 */
export function checkStoredMetadata(doc: unknown, mKey: string): CheckpointMetadata {
  const bad = (field: string, why: string) =>
    new RestoreFailure("InvalidMetadata", `Checkpoint metadata "${mKey}": ${field} ${why}`);
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) {
    throw bad("the document", "is not a JSON object");
  }
  const m = doc as CheckpointMetadata;
  if (!m.sourcePod?.spec?.containers?.length || !m.container) {
    throw new RestoreFailure(
      "PodSpecUnavailable",
      `Checkpoint metadata "${mKey}" holds no source pod spec or container name`,
    );
  }
  if (!isDnsLabel(m.container)) {
    throw bad(
      `field "container" ${JSON.stringify(String(m.container).slice(0, 100))}`,
      "is not a container name (a DNS label: lowercase letters, digits and '-', at most 63)",
    );
  }
  if (m.preCopy !== undefined) {
    // The archive holds only the pages dirtied after the pre-copy round; the round itself is
    // a layer of the checkpoint image, not in the store.
    throw new RestoreFailure(
      "IncrementalArchive",
      `Checkpoint metadata "${mKey}": the archive is incremental against a pre-copy round ` +
        `(field "preCopy"), which lives only in its checkpoint image ${
          JSON.stringify(String(m.image?.reference ?? m.preCopy?.parentImage ?? "").slice(0, 300))
        }: restore it from that image (spec.source.image)`,
    );
  }
  const a = m.archive;
  if (a !== undefined) {
    if (!a || typeof a !== "object" || Array.isArray(a)) {
      throw bad('field "archive"', "is not an object");
    }
    if (a.key !== undefined) {
      const why = typeof a.key === "string" ? keyProblem(a.key) : "it is not a string";
      if (why) {
        throw bad(`field "archive.key" ${JSON.stringify(a.key)}`, `is not a valid key: ${why}`);
      }
      const dir = mKey.slice(0, mKey.lastIndexOf("/") + 1);
      if (!a.key.startsWith(dir) || a.key.slice(dir.length).includes("/")) {
        throw bad(
          `field "archive.key" ${JSON.stringify(a.key)}`,
          `is not next to its metadata (under "${dir}")`,
        );
      }
    }
    if (a.sha256 !== undefined && !/^(sha256:)?[a-f0-9]{64}$/.test(String(a.sha256))) {
      throw bad(`field "archive.sha256" ${JSON.stringify(a.sha256)}`, "is not 64 hex digits");
    }
    if (
      a.size !== undefined &&
      (typeof a.size !== "number" || !Number.isSafeInteger(a.size) || a.size < 0)
    ) {
      throw bad(`field "archive.size" ${JSON.stringify(a.size)}`, "is not a non-negative integer");
    }
  }
  return m;
}

/**
 * The metadata keys a storage source names: the key itself (an archive or its
 * `.checkpoint.json`), or every `<container>.checkpoint.json` directly under a
 * checkpoint prefix (`<ns>/<pod>/<id>/`): all the pod's containers.
 */
async function metadataKeys(
  store: ReturnType<typeof createStore>,
  key: string,
  className: string,
): Promise<string[]> {
  if (key.endsWith(".tar") || key.endsWith(".checkpoint.json")) return [metadataKey(key)];
  const prefix = key.endsWith("/") ? key : `${key}/`;
  const keys: string[] = [];
  for await (const o of store.list(prefix)) {
    const rest = o.key.slice(prefix.length);
    if (!rest.includes("/") && rest.endsWith(".checkpoint.json")) keys.push(o.key);
  }
  if (!keys.length) {
    throw new RestoreFailure(
      "MetadataUnavailable",
      `No checkpoint under "${prefix}" in class "${className}": give the key of an archive ` +
        "(.tar), of its .checkpoint.json, or a checkpoint prefix <namespace>/<pod>/<id>/",
    );
  }
  return keys.sort();
}

/** Metadata of an image from its manifest annotations. */
function metaFromAnnotations(
  annotations: Record<string, string> | undefined,
  what: string,
): CheckpointMetadata {
  let d;
  try {
    d = describeCheckpointImage(annotations);
  } catch (err) {
    throw new RestoreFailure("InvalidImage", `${what}: ${(err as Error).message}`);
  }
  return {
    namespace: d.namespace,
    pod: d.pod,
    container: d.containerName,
    node: d.node,
    architecture: d.architecture,
    runtime: d.runtime,
    archive: d.archiveSha256 ? { sha256: d.archiveSha256 } : undefined,
    sourcePod: d.sourcePod as CheckpointMetadata["sourcePod"],
  };
}

/**
 * Checks each checkpoint's container against the one it is given for, and
 * that all come from one pod whose spec travels with at least one of them;
 * returns that one's metadata. (`image` names the checkpoint in messages.)
 */
function mergeImageMetadata(
  described: { containerName: string; image: string; meta: CheckpointMetadata }[],
): CheckpointMetadata {
  for (const d of described) {
    if (!d.meta.container) {
      throw new RestoreFailure(
        "InvalidImage",
        `Image "${d.image}" is not a checkpoint image: its manifest has no ` +
          `"org.criu.checkpoint.container.name" annotation`,
      );
    }
    if (d.meta.container !== d.containerName) {
      throw new RestoreFailure(
        "ContainerMismatch",
        `Image "${d.image}" holds a checkpoint of container "${d.meta.container}", ` +
          `not of "${d.containerName}"`,
      );
    }
  }
  const withPod = described.find((d) => d.meta.sourcePod?.spec?.containers?.length);
  if (!withPod) {
    throw new RestoreFailure(
      "PodSpecUnavailable",
      `Image "${described[0].image}" carries no pod spec (annotation "lpm.my.domain/pod-spec"): ` +
        "it was not made by lpm; restore from the checkpoint's storage key instead",
    );
  }
  const other = described.find((d) =>
    d.meta.pod && (d.meta.pod !== withPod.meta.pod || d.meta.namespace !== withPod.meta.namespace)
  );
  if (other) {
    throw new RestoreFailure(
      "InvalidSource",
      `Checkpoints "${withPod.image}" and "${other.image}" come from different pods ` +
        `("${withPod.meta.namespace}/${withPod.meta.pod}" and "${other.meta.namespace}/${other.meta.pod}")`,
    );
  }
  const names = withPod.meta.sourcePod!.spec!.containers.map((c) => c.name);
  const unknown = described.find((d) => !names.includes(d.containerName));
  if (unknown) {
    throw new RestoreFailure(
      "ContainerMismatch",
      `Container "${unknown.containerName}" is not in the source pod's spec (${names.join(", ")})`,
    );
  }
  return withPod.meta;
}

async function describeImages(
  deps: ReconcilerDeps,
  refs: { containerName: string; image: string }[],
): Promise<DescribedSource> {
  const described = [];
  const images: Record<string, string> = {};
  const encrypted: string[] = [];
  for (const r of refs) {
    const slash = r.image.indexOf("/");
    const host = r.image.slice(0, slash);
    const rest = r.image.slice(slash + 1);
    const at = rest.indexOf("@");
    const colon = rest.lastIndexOf(":");
    const [repo, which] = at >= 0
      ? [rest.slice(0, at), rest.slice(at + 1)]
      : colon >= 0
      ? [rest.slice(0, colon), rest.slice(colon + 1)]
      : [rest, "latest"];
    const client = new RegistryClient(host, await accessForHost(deps, host));
    let manifest: { annotations?: Record<string, string>; layers?: { mediaType: string }[] };
    let digest: string;
    try {
      const got = await client.getManifest(repo, which);
      digest = got.digest;
      manifest = JSON.parse(new TextDecoder().decode(got.bytes));
    } catch (err) {
      throw new RestoreFailure(
        "ImageUnavailable",
        `Cannot read checkpoint image "${r.image}": ${(err as Error).message}`,
      );
    } finally {
      client.close?.();
    }
    described.push({ ...r, meta: metaFromAnnotations(manifest.annotations, `Image "${r.image}"`) });
    // Pinned by digest: the pod runs exactly the image that was checked.
    images[r.containerName] = `${host}/${repo}@${digest}`;
    if ((manifest.layers ?? []).some(isEncryptedLayer)) encrypted.push(r.containerName);
  }
  const meta = mergeImageMetadata(described);
  return {
    meta,
    materialize: () =>
      Promise.resolve({
        images,
        summary: `Checkpoint images ${Object.values(images).map((i) => `"${i}"`).join(", ")}`,
        encrypted,
      }),
    close: () => Promise.resolve(),
  };
}

async function describeLayout(
  deps: ReconcilerDeps,
  pr: PodRestore,
  path: string,
  opts: DescribeOptions,
): Promise<DescribedSource> {
  const st = await Deno.stat(path).catch(() => undefined);
  if (!st) {
    throw new RestoreFailure(
      "LayoutNotFound",
      `OCI layout "${path}" does not exist where the controller runs`,
    );
  }
  const work = await Deno.makeTempDir({ dir: opts.tmpDir, prefix: "lpm-restore-layout-" });
  const close = () => Deno.remove(work, { recursive: true }).catch(() => {});
  try {
    let layout: OciLayout;
    try {
      layout = st.isDirectory ? await OciLayout.open(path) : await readLayoutTarball(path, work);
    } catch (err) {
      throw new RestoreFailure("InvalidLayout", `Cannot read OCI layout "${path}": ${err}`);
    }
    const desc = await layout.resolve();
    const manifest = JSON.parse(new TextDecoder().decode(await layout.readBytes(desc.digest)));
    const meta = metaFromAnnotations(manifest.annotations, `OCI layout "${path}"`);
    const container = meta.container ?? "";
    mergeImageMetadata([{ containerName: container, image: path, meta }]);
    const cls = await defaultRegistryClass(deps);
    const materialize = async () => {
      const repository = cls.spec.registry!.repository;
      const pushed = await pushImage(layout.dir, `${repository}:${tagOf(pr)}`, {
        ...await registryAccess(deps, cls),
        ref: desc.digest,
      });
      const image = `${repository}@${pushed.digest}`;
      return {
        images: { [container]: image },
        summary: `OCI layout "${path}" imported as "${image}"`,
      };
    };
    return { meta, materialize, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * The image of an encrypted stored archive, rebuilt without decrypting it
 * (this cluster's controller need not hold the key; the target's agent
 * decrypts). The metadata must name the key and the plaintext's sha256.
 */
function encryptedImage(archive: string, m: CheckpointMetadata, layoutDir: string) {
  const e = m.encryption!;
  if (typeof e.keyId !== "string" || typeof e.plainSha256 !== "string") {
    throw new RestoreFailure(
      "InvalidMetadata",
      `Checkpoint metadata of container "${m.container}": field "encryption" names no keyId or plainSha256`,
    );
  }
  const container = m.sourcePod?.spec?.containers?.find((c) => c.name === m.container);
  return buildEncryptedCheckpointImage(archive, {
    layoutDir,
    refName: m.container!,
    keyId: e.keyId,
    plainSha256: e.plainSha256,
    architecture: checkpointArchitecture(m),
    annotations: checkpointAnnotations({
      containerName: m.container!,
      rootfsImageName: container?.image,
      pod: m.pod,
      namespace: m.namespace,
      node: m.node,
      engine: m.runtime?.name,
      engineVersion: m.runtime?.version,
      criuVersion: m.runtime?.criuVersion,
      architecture: checkpointArchitecture(m),
      podSpec: JSON.stringify(m.sourcePod),
      compression: "none",
    }),
  });
}
