/**
 * OCI checkpoint images: build one from a checkpoint archive, write and read
 * OCI layouts and tarballs, push to and pull from registries over the
 * distribution API, and extract the archive back with every digest checked.
 *
 * ```ts
 * const img = await buildCheckpointImage("/var/lib/kubelet/checkpoints/x.tar", { containerName: "app" });
 * const { reference } = await pushImage(img, "registry:5000/lpm/app:cp1", { insecure: true });
 * const pulled = await pullImage(reference, "/tmp/layout", { insecure: true });
 * await extractCheckpointArchive(pulled.layoutDir, "/tmp/x.tar", { ref: pulled.refName });
 * ```
 * @module
 */
export { buildCheckpointImage } from "./build.ts";
export type { BuildOptions, CheckpointImage } from "./build.ts";
export { extractCheckpointArchive, readManifest } from "./extract.ts";
export { OciLayout, readLayoutTarball, REF_NAME, writeLayoutTarball } from "./layout.ts";
export type { ImageIndex } from "./layout.ts";
export { pushImage } from "./push.ts";
export type { PushOptions, PushResult } from "./push.ts";
export { pullImage } from "./pull.ts";
export type { PullOptions, PullResult } from "./pull.ts";
export { RegistryClient, RegistryError } from "./registry_client.ts";
export type {
  BlobSource,
  RegistryClientOptions,
  RegistryImage,
  UploadOptions,
} from "./registry_client.ts";
export { credentialsFor } from "./auth.ts";
export type { DockerConfig, RegistryCredentials } from "./auth.ts";
export { formatReference, parseReference } from "./reference.ts";
export type { ImageReference } from "./reference.ts";
export { checkpointAnnotations, CRIO, CRIU, describeCheckpointImage, LPM } from "./annotations.ts";
export type { CheckpointAnnotationInput, CheckpointImageDescription } from "./annotations.ts";
export { hostArchitecture } from "./platform.ts";
export { compressStream, decompressStream } from "./compress.ts";
export { digestBytes, digestFile, DigestStream } from "./digest.ts";
export * from "./media_types.ts";
export { buildLayeredImage } from "./layered_image.ts";
export type { LayeredImage, LayeredImageOptions } from "./layered_image.ts";
export { reproducibleTar } from "./rootfs_tar.ts";
export { VOLUME_IMAGE, VOLUME_INIT_CONTAINER, volumeImageCommand } from "./volume_image.ts";
export { insecureRegistryRefusal, loopbackHost } from "./insecure.ts";
export {
  ENC_KEYS_LPM,
  ENC_PUBOPTS,
  ENCRYPTED_SUFFIX,
  encryptedLayerDescriptor,
  encryptedLayerInfo,
  isEncryptedLayer,
  LPM_CIPHER,
} from "./encrypted_layer.ts";
export type { EncryptedLayerInfo } from "./encrypted_layer.ts";
export { buildEncryptedCheckpointImage } from "./encrypted_image.ts";
export type { EncryptedImageOptions } from "./encrypted_image.ts";
