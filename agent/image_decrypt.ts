/**
 * An encrypted checkpoint image onto this node: containerd cannot unpack an
 * ocicrypt `+encrypted` layer without imgcrypt's stream processor
 * (`ctd-decoder`, configured under `[stream_processors]`), and even with it
 * would not know lpm's key provider. So the target's agent does it: reads
 * the manifest, streams the layer blob from the registry (digest checked),
 * decrypts it on this node with the class's keys (every chunk
 * authenticated), rebuilds the plain checkpoint image in a work directory,
 * and imports it into the node's containerd under the name the restored
 * pod uses (the encrypted image's `repository@digest`), so the kubelet finds
 * it (`IfNotPresent`) and never pulls. Plaintext exists only on this node,
 * and only until the import is done: the work directory is removed.
 * @module
 */
import {
  buildCheckpointImage,
  CRIO,
  DigestStream,
  encryptedLayerInfo,
  type ImageManifest,
  isEncryptedLayer,
  LPM,
  OciLayout,
  type RegistryClient,
  writeLayoutTarball,
} from "../oci/mod.ts";
import { decryptToFile, type KeyRing } from "../storage/mod.ts";
import { importImage } from "./containerd_import.ts";

/** Reads a manifest and says whether it has an encrypted layer. */
export async function readImageManifest(
  client: RegistryClient,
  repo: string,
  ref: string,
): Promise<ImageManifest> {
  const m = await client.getManifest(repo, ref);
  return JSON.parse(new TextDecoder().decode(m.bytes)) as ImageManifest;
}

/** Whether a manifest has an encrypted layer. */
export function isEncryptedImage(m: ImageManifest): boolean {
  return (m.layers ?? []).some(isEncryptedLayer);
}

/** Options of {@linkcode importDecryptedImage}. */
export interface DecryptImportOptions {
  /** Registry client of the image's host. */
  client: RegistryClient;
  /** Repository path on that host. */
  repo: string;
  /** The name the image is imported under: the reference the pod uses. */
  name: string;
  /** The class's keys; undefined when the class has no spec.encryption. */
  keys?: KeyRing;
  /** The class's name, for messages. */
  className: string;
  /** Work directory (created, removed at the end). */
  workDir: string;
  /** containerd's socket (`unix:///...` or a path). */
  containerdAddress: string;
  /** Cancels it. */
  signal?: AbortSignal;
}

/**
 * Decrypts the image's single encrypted layer and imports the plain image
 * into containerd as `opts.name`; resolves with the plain manifest digest.
 */
export async function importDecryptedImage(
  manifest: ImageManifest,
  opts: DecryptImportOptions,
): Promise<string> {
  if (manifest.layers.length !== 1) {
    throw new Error(
      `Encrypted checkpoint image "${opts.name}" has ${manifest.layers.length} layers; ` +
        "a checkpoint image has one",
    );
  }
  const layer = manifest.layers[0];
  const { keyId } = encryptedLayerInfo(layer);
  if (!opts.keys) {
    throw new Error(
      `Checkpoint image "${opts.name}" is encrypted (key "${keyId}") but storage class ` +
        `"${opts.className}" has no spec.encryption to decrypt it`,
    );
  }
  if (!opts.keys.byId.has(keyId)) {
    throw new Error(
      `Checkpoint image "${opts.name}" is encrypted with key "${keyId}", which ` +
        `spec.encryption.keys of storage class "${opts.className}" does not list`,
    );
  }
  await Deno.mkdir(opts.workDir, { recursive: true });
  try {
    const plain = `${opts.workDir}/checkpoint.tar`;
    const { stream } = await opts.client.getBlob(opts.repo, layer.digest, { signal: opts.signal });
    const digest = new DigestStream();
    await decryptToFile(stream.pipeThrough(digest), plain, opts.keys, {
      signal: opts.signal,
      what: `checkpoint image "${opts.name}"`,
    });
    if (digest.digest !== layer.digest) {
      throw new Error(
        `Checkpoint image "${opts.name}": layer blob digest ${digest.digest}, manifest says ${layer.digest}`,
      );
    }
    const annotations = { ...manifest.annotations };
    delete annotations[LPM.archiveEncryption];
    delete annotations[LPM.archiveSha256]; // the build computes the plain archive's
    const layoutDir = `${opts.workDir}/layout`;
    const built = await buildCheckpointImage(plain, {
      containerName: annotations[CRIO.name],
      layoutDir,
      compression: "none",
      annotations,
      refName: opts.name,
    });
    await Deno.remove(plain);
    await nameInIndex(layoutDir, opts.name);
    const tarball = `${opts.workDir}/image.tar`;
    await writeLayoutTarball(layoutDir, tarball);
    await Deno.remove(layoutDir, { recursive: true });
    await importImage(tarball, { address: opts.containerdAddress, signal: opts.signal });
    return built.manifest.digest;
  } finally {
    await Deno.remove(opts.workDir, { recursive: true }).catch(() => {});
  }
}

/** Names the layout's image for containerd's importer (`io.containerd.image.name`). */
async function nameInIndex(layoutDir: string, name: string): Promise<void> {
  await OciLayout.open(layoutDir);
  const path = `${layoutDir}/index.json`;
  const index = JSON.parse(await Deno.readTextFile(path)) as {
    manifests: { annotations?: Record<string, string> }[];
  };
  for (const m of index.manifests) {
    m.annotations = { ...m.annotations, "io.containerd.image.name": name };
  }
  await Deno.writeTextFile(path, JSON.stringify(index));
}
