/**
 * A checkpoint image whose layer is an already encrypted archive (the stored
 * form, `lpm-aead-v1`), for a restore that rebuilds the image from storage
 * in a cluster that may not hold the key: the ciphertext is copied as is,
 * never decrypted here. The layer is ocicrypt-style (`encrypted_layer.ts`),
 * the config's `diff_id` is the plaintext's digest (recorded by the source
 * agent in the metadata), and the manifest carries the checkpoint
 * annotations given (built from the stored metadata).
 * @module
 */
import { encryptedLayerDescriptor } from "./encrypted_layer.ts";
import type { CheckpointImage } from "./build.ts";
import { fileStream } from "./digest.ts";
import { OciLayout } from "./layout.ts";
import {
  CONFIG_MEDIA_TYPE,
  type Descriptor,
  type ImageManifest,
  layerMediaType,
  MANIFEST_MEDIA_TYPE,
} from "./media_types.ts";
import { LPM } from "./annotations.ts";
import { ENCRYPTION_FORMAT } from "../storage/mod.ts";

/** Options of {@linkcode buildEncryptedCheckpointImage}. */
export interface EncryptedImageOptions {
  /** Layout directory (created). */
  layoutDir: string;
  /** Name in the layout index. */
  refName: string;
  /** The class key id the archive was encrypted with. */
  keyId: string;
  /** sha256 (hex) of the plaintext archive: the layer's diff_id. */
  plainSha256: string;
  /** Architecture (GOARCH name). */
  architecture: string;
  /** Manifest annotations (the checkpoint annotations). */
  annotations: Record<string, string>;
}

/** Builds the image of encrypted archive `path` into an OCI layout. */
export async function buildEncryptedCheckpointImage(
  path: string,
  opts: EncryptedImageOptions,
): Promise<CheckpointImage> {
  if (!/^[0-9a-f]{64}$/.test(opts.plainSha256)) {
    throw new Error(`The plaintext sha256 "${opts.plainSha256}" is not 64 hex digits`);
  }
  const layout = await OciLayout.open(opts.layoutDir, { create: true });
  const layer = await layout.writeBlob(await fileStream(path));
  const annotations = {
    ...opts.annotations,
    [LPM.archiveSha256]: layer.digest.slice(7),
    [LPM.archiveEncryption]: ENCRYPTION_FORMAT,
  };
  const config = {
    created: new Date().toISOString(),
    architecture: opts.architecture,
    os: "linux",
    config: { Labels: annotations },
    rootfs: { type: "layers", diff_ids: [`sha256:${opts.plainSha256}`] },
  };
  const configDesc = await layout.writeBytes(new TextEncoder().encode(JSON.stringify(config)));
  const image: ImageManifest = {
    schemaVersion: 2,
    mediaType: MANIFEST_MEDIA_TYPE,
    config: { mediaType: CONFIG_MEDIA_TYPE, ...configDesc },
    layers: [encryptedLayerDescriptor({ mediaType: layerMediaType("none"), ...layer }, opts.keyId)],
    annotations,
  };
  const manifestDesc = await layout.writeBytes(new TextEncoder().encode(JSON.stringify(image)));
  const manifest: Descriptor = { mediaType: MANIFEST_MEDIA_TYPE, ...manifestDesc };
  await layout.addManifest(manifest, opts.refName);
  return {
    layoutDir: opts.layoutDir,
    refName: opts.refName,
    manifest,
    image,
    archiveDigest: layer.digest,
    archiveSize: layer.size,
  };
}
