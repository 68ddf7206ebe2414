/**
 * OCI media types used by checkpoint images.
 * @module
 */

/** OCI image manifest. */
export const MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json";
/** OCI image index. */
export const INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json";
/** OCI image config. */
export const CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json";
/** Docker schema 2 manifest (accepted when pulling). */
export const DOCKER_MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json";

/** Layer compression of a checkpoint image. */
export type Compression = "none" | "gzip" | "zstd";

/** The layer media type for a compression. */
export function layerMediaType(c: Compression): string {
  const base = "application/vnd.oci.image.layer.v1.tar";
  return c === "none" ? base : `${base}+${c}`;
}

/** The compression of a layer media type (OCI or Docker names). */
export function compressionOf(mediaType: string): Compression {
  if (mediaType.endsWith("+gzip") || mediaType.endsWith(".tar.gzip")) return "gzip";
  if (mediaType.endsWith("+zstd")) return "zstd";
  if (mediaType.endsWith(".tar") || mediaType.endsWith("diff.tar")) return "none";
  throw new Error(`Unsupported layer media type "${mediaType}"`);
}

/** An OCI content descriptor. */
export interface Descriptor {
  /** Media type. */
  mediaType: string;
  /** `sha256:<hex>`. */
  digest: string;
  /** Size in bytes. */
  size: number;
  /** Annotations. */
  annotations?: Record<string, string>;
}

/** An OCI image manifest. */
export interface ImageManifest {
  /** Always 2. */
  schemaVersion: 2;
  /** {@linkcode MANIFEST_MEDIA_TYPE}. */
  mediaType: string;
  /** Config descriptor. */
  config: Descriptor;
  /** Layer descriptors. */
  layers: Descriptor[];
  /** Manifest annotations (where CRI-O and containerd look for checkpoint keys). */
  annotations?: Record<string, string>;
}
