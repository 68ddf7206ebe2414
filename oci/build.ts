/**
 * Builds an OCI checkpoint image from a checkpoint archive: one layer that
 * is the archive itself (its entries at `/`), compressed as asked, an image
 * config whose `diff_id` is the archive's sha256, and a manifest carrying
 * the checkpoint annotations. One streaming pass over the archive.
 * @module
 */
import { readArchive } from "../archive/mod.ts";
import { checkpointAnnotations } from "./annotations.ts";
import { compressStream } from "./compress.ts";
import { DigestStream, fileStream } from "./digest.ts";
import { OciLayout } from "./layout.ts";
import { hostArchitecture } from "./platform.ts";
import {
  type Compression,
  CONFIG_MEDIA_TYPE,
  type Descriptor,
  type ImageManifest,
  layerMediaType,
  MANIFEST_MEDIA_TYPE,
} from "./media_types.ts";

/** Options of {@linkcode buildCheckpointImage}. */
export interface BuildOptions {
  /** Container name the image restores (defaults to `config.dump`'s name). */
  containerName?: string;
  /** Layout directory to write (created; may already hold other images). */
  layoutDir?: string;
  /** Name of the image in the layout's index (default: `latest`). */
  refName?: string;
  /** Layer compression (default gzip). */
  compression?: Compression;
  /** Source pod, namespace and node (provenance annotations). */
  source?: { pod?: string; namespace?: string; node?: string };
  /** Engine that took the checkpoint. */
  runtime?: { name?: string; version?: string; criuVersion?: string };
  /** CPU architecture the checkpoint was taken on (GOARCH name); default: this host's. */
  architecture?: string;
  /** JSON of the source pod, carried as an annotation so a restore needs nothing else. */
  podSpec?: string;
  /** Extra manifest annotations (win over the computed ones). */
  annotations?: Record<string, string>;
  /** Use the built-in gzip even when `pigz` is installed. */
  builtinGzip?: boolean;
  /** Skip validating the archive (the caller just did). */
  skipValidation?: boolean;
  /** Progress: archive bytes read so far. */
  onProgress?: (bytes: number) => void;
}

/** A built checkpoint image in an OCI layout. */
export interface CheckpointImage {
  /** The layout directory. */
  layoutDir: string;
  /** Its name in the layout index. */
  refName: string;
  /** Manifest descriptor. */
  manifest: Descriptor;
  /** The manifest itself. */
  image: ImageManifest;
  /** `sha256:<hex>` of the archive (the layer's diff_id). */
  archiveDigest: string;
  /** Archive size in bytes. */
  archiveSize: number;
}

/** Builds the checkpoint image of `archivePath` into an OCI layout. */
export async function buildCheckpointImage(
  archivePath: string,
  opts: BuildOptions = {},
): Promise<CheckpointImage> {
  const compression = opts.compression ?? "gzip";
  const meta = opts.skipValidation ? undefined : await readArchive(archivePath);
  if (meta?.compressed) {
    throw new Error(
      `Cannot build a checkpoint image from "${archivePath}": the archive is gzip-compressed; ` +
        "give the plain tar (the layer carries its own compression)",
    );
  }
  const containerName = opts.containerName ?? meta?.config.name;
  if (!containerName) {
    throw new Error(`Cannot build a checkpoint image from "${archivePath}": no container name`);
  }
  const layoutDir = opts.layoutDir ?? await Deno.makeTempDir({ prefix: "lpm-oci-" });
  const layout = await OciLayout.open(layoutDir, { create: true });

  const archiveHash = new DigestStream();
  const source = await fileStream(archivePath);
  let read = 0;
  const counted = opts.onProgress
    ? source.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(c, ctl) {
          read += c.length;
          opts.onProgress!(read);
          ctl.enqueue(c);
        },
      }),
    )
    : source;
  const layer = await layout.writeBlob(
    compressStream(counted.pipeThrough(archiveHash), compression, { builtin: opts.builtinGzip }),
  );
  const archiveDigest = archiveHash.digest;
  const created = meta?.config.checkpointedTime && !meta.config.checkpointedTime.startsWith("0001")
    ? meta.config.checkpointedTime
    : new Date().toISOString();
  const architecture = opts.architecture ?? hostArchitecture();
  const annotations = {
    ...checkpointAnnotations({
      containerName,
      rootfsImageName: meta?.config.rootfsImageName,
      rootfsImageID: meta?.config.rootfsImage,
      pod: opts.source?.pod,
      namespace: opts.source?.namespace,
      node: opts.source?.node,
      checkpointTime: created,
      engine: opts.runtime?.name,
      engineVersion: opts.runtime?.version,
      runtime: meta?.config.runtime,
      criuVersion: opts.runtime?.criuVersion,
      architecture,
      podSpec: opts.podSpec,
      archiveSha256: archiveDigest.slice("sha256:".length),
      compression,
    }),
    ...opts.annotations,
  };
  const config = {
    // A per-image `created` keeps configs (and so image ids) distinct.
    created: new Date().toISOString(),
    architecture,
    os: "linux",
    config: { Labels: annotations },
    rootfs: { type: "layers", diff_ids: [archiveDigest] },
    history: [{
      created,
      created_by: "lpm checkpoint image",
      comment: archivePath.split("/").pop(),
    }],
  };
  const configDesc = await layout.writeBytes(new TextEncoder().encode(JSON.stringify(config)));
  const image: ImageManifest = {
    schemaVersion: 2,
    mediaType: MANIFEST_MEDIA_TYPE,
    config: { mediaType: CONFIG_MEDIA_TYPE, ...configDesc },
    layers: [{ mediaType: layerMediaType(compression), ...layer }],
    annotations,
  };
  const manifestDesc = await layout.writeBytes(new TextEncoder().encode(JSON.stringify(image)));
  const manifest: Descriptor = { mediaType: MANIFEST_MEDIA_TYPE, ...manifestDesc };
  const refName = opts.refName ?? "latest";
  await layout.addManifest(manifest, refName);
  return { layoutDir, refName, manifest, image, archiveDigest, archiveSize: archiveHash.size };
}
