/**
 * A plain, runnable OCI image from uncompressed tar layers (lowest first) in
 * an OCI layout: the helper images lpm makes itself, such as the volume image
 * whose init container copies carried emptyDir contents into a restored pod.
 * Layers are stored gzip-compressed; `diff_ids` are the tars' own digests.
 * @module
 */
import { compressStream } from "./compress.ts";
import { DigestStream, fileStream } from "./digest.ts";
import { OciLayout } from "./layout.ts";
import {
  CONFIG_MEDIA_TYPE,
  type Descriptor,
  type ImageManifest,
  layerMediaType,
  MANIFEST_MEDIA_TYPE,
} from "./media_types.ts";
import { hostArchitecture } from "./platform.ts";

/** Options of {@linkcode buildLayeredImage}. */
export interface LayeredImageOptions {
  /** Layout directory to write (created; may hold other images). */
  layoutDir: string;
  /** Image config `config` section (Entrypoint, Cmd, Env, WorkingDir, Labels...). */
  config?: Record<string, unknown>;
  /** Manifest annotations. */
  annotations?: Record<string, string>;
  /** Name in the layout's index (default `latest`). */
  refName?: string;
  /** CPU architecture (GOARCH name; default this host's). */
  architecture?: string;
}

/** A built image in an OCI layout. */
export interface LayeredImage {
  /** The layout directory. */
  layoutDir: string;
  /** Manifest descriptor. */
  manifest: Descriptor;
}

/** Builds an image of `layers` (paths of uncompressed tars, lowest first). */
export async function buildLayeredImage(
  layers: string[],
  opts: LayeredImageOptions,
): Promise<LayeredImage> {
  const layout = await OciLayout.open(opts.layoutDir, { create: true });
  const descs: Descriptor[] = [];
  const diffIds: string[] = [];
  for (const path of layers) {
    const diff = new DigestStream();
    const blob = await layout.writeBlob(
      compressStream((await fileStream(path)).pipeThrough(diff), "gzip"),
    );
    descs.push({ mediaType: layerMediaType("gzip"), ...blob });
    diffIds.push(diff.digest);
  }
  // Fixed `created`: the same layers and config make the same digest.
  const config = {
    created: "1970-01-01T00:00:00Z",
    architecture: opts.architecture ?? hostArchitecture(),
    os: "linux",
    config: opts.config ?? {},
    rootfs: { type: "layers", diff_ids: diffIds },
  };
  const configDesc = await layout.writeBytes(new TextEncoder().encode(JSON.stringify(config)));
  const image: ImageManifest = {
    schemaVersion: 2,
    mediaType: MANIFEST_MEDIA_TYPE,
    config: { mediaType: CONFIG_MEDIA_TYPE, ...configDesc },
    layers: descs,
    ...(opts.annotations ? { annotations: opts.annotations } : {}),
  };
  const manifestDesc = await layout.writeBytes(new TextEncoder().encode(JSON.stringify(image)));
  const manifest: Descriptor = { mediaType: MANIFEST_MEDIA_TYPE, ...manifestDesc };
  await layout.addManifest(manifest, opts.refName ?? "latest");
  return { layoutDir: opts.layoutDir, manifest };
}
