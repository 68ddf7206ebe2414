/**
 * An encrypted checkpoint image onto this node: containerd cannot unpack an
 * ocicrypt `+encrypted` layer without imgcrypt's stream processor
 * (`ctd-decoder`, configured under `[stream_processors]`), and even with it
 * would not know lpm's key provider. So the target's agent does it, in one
 * streaming pass: the layer blob from the registry through decryption with
 * the class's keys (every chunk authenticated before it goes on), served with the image's own config (whose diff_id is the
 * plaintext's digest, as ocicrypt has it) and a plain manifest to the node's
 * runtime over loopback (`image_loopback.ts`), which pulls it through the CRI
 * exactly as the plain path pulls a plain checkpoint image (content store,
 * digest checks, unpack) in the `k8s.io` namespace; `ctr` then gives it the
 * name the restored pod uses (the encrypted image's `repository@digest`), so
 * the kubelet finds it (`IfNotPresent`) and never pulls. Plaintext touches
 * only this node (its loopback and its runtime's store), no temporary file.
 * @module
 */
import {
  CONFIG_MEDIA_TYPE,
  digestBytes,
  encryptedLayerInfo,
  type ImageManifest,
  isEncryptedLayer,
  layerMediaType,
  LPM,
  MANIFEST_MEDIA_TYPE,
  type RegistryClient,
} from "../oci/mod.ts";
import {
  DecryptionError,
  decryptStream,
  type EncryptionHeader,
  type KeyRing,
  parseHeader,
  plainSizeOf,
} from "../storage/mod.ts";
import { nameImage } from "./containerd_import.ts";
import { criPullImage } from "./cri_image.ts";
import { serveOnLoopback } from "./image_loopback.ts";

/** Reads a manifest. */
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
  /** containerd's socket (`unix:///...` or a path). */
  containerdAddress: string;
  /** Cancels it. */
  signal?: AbortSignal;
}

/** Refuses what this agent cannot decrypt, naming the class field. */
function checkKeys(manifest: ImageManifest, opts: DecryptImportOptions): string {
  if (manifest.layers.length !== 1) {
    throw new Error(
      `Encrypted checkpoint image "${opts.name}" has ${manifest.layers.length} layers; ` +
        "a checkpoint image has one",
    );
  }
  const { keyId } = encryptedLayerInfo(manifest.layers[0]);
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
  return keyId;
}

/**
 * Decrypts the image's single encrypted layer into the node's runtime as
 * `opts.name`; resolves with the plain manifest's digest.
 */
export async function importDecryptedImage(
  manifest: ImageManifest,
  opts: DecryptImportOptions,
): Promise<string> {
  checkKeys(manifest, opts);
  const layer = manifest.layers[0];
  const headerRead = readHeader(opts, layer.digest);
  headerRead.catch(() => {}); // awaited below, after the config
  const configBytes = await readBlob(opts, manifest.config.digest, 1 << 20);
  const config = JSON.parse(new TextDecoder().decode(configBytes)) as {
    rootfs?: { diff_ids?: string[] };
  };
  const diffId = config.rootfs?.diff_ids?.[0] ?? "";
  if (!/^sha256:[0-9a-f]{64}$/.test(diffId)) {
    throw new Error(`Checkpoint image "${opts.name}": its config has no valid diff_id`);
  }
  const plainSize = plainSizeOf(layer.size, await headerRead);
  const plainLayer = { mediaType: layerMediaType("none"), digest: diffId, size: plainSize };
  const annotations: Record<string, string> = {
    ...manifest.annotations,
    [LPM.archiveSha256]: diffId.slice(7),
  };
  delete annotations[LPM.archiveEncryption];
  const plainManifest = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: MANIFEST_MEDIA_TYPE,
    config: {
      mediaType: CONFIG_MEDIA_TYPE,
      digest: manifest.config.digest,
      size: configBytes.length,
    },
    layers: [plainLayer],
    annotations,
  }));
  const manifestDigest = digestBytes(plainManifest);
  const served = serveOnLoopback({
    manifest: { digest: manifestDigest, bytes: plainManifest },
    config: { digest: manifest.config.digest, bytes: configBytes },
    layer: {
      digest: diffId,
      size: plainSize,
      open: (signal) => plainLayerStream(opts, layer, signal),
    },
  });
  try {
    const endpoint = opts.containerdAddress.replace(/^(?!unix:\/\/)/, "unix://");
    await criPullImage(endpoint, served.reference, { signal: opts.signal });
  } catch (err) {
    // The decryption's error, not the runtime's view of it; else the runtime's, under the image's name.
    const loopback = served.reference.split("@")[0];
    throw served.failure() ?? new Error(
      `The runtime did not take the decrypted checkpoint image "${opts.name}": ${
        (err as Error).message.replaceAll(loopback, "(loopback)")
      }`,
    );
  } finally {
    await served.close();
  }
  await nameImage(served.reference, opts.name, {
    address: opts.containerdAddress,
    signal: opts.signal,
  });
  return manifestDigest;
}

/**
 * The layer's plaintext: the blob from the registry through decryption,
 * every chunk authenticated before it goes on. The ciphertext is not hashed
 * here (it was, until measured at 0.3 s of this 2-core machine's CPU per
 * 256 MiB on the critical path): a blob that decrypts to the end under the
 * class's key is one that key's holder sealed, whole and in order (the
 * STREAM construction binds header, order and the final chunk), and which
 * one it is, is pinned by the runtime, which checks the plaintext against
 * the config's `diff_id` (the config's digest is checked in `readBlob`, the
 * manifest's by the registry client, and the pod names the manifest by
 * digest) before it stores anything.
 */
async function plainLayerStream(
  opts: DecryptImportOptions,
  layer: { digest: string },
  signal: AbortSignal,
): Promise<ReadableStream<Uint8Array>> {
  const both = opts.signal ? AbortSignal.any([opts.signal, signal]) : signal;
  const { stream } = await opts.client.getBlob(opts.repo, layer.digest, { signal: both });
  return stream.pipeThrough(decryptStream(opts.keys!, { what: `checkpoint image "${opts.name}"` }));
}

/** The encryption header at the start of blob `digest` (read, then the download is dropped). */
async function readHeader(o: DecryptImportOptions, digest: string): Promise<EncryptionHeader> {
  const { stream } = await o.client.getBlob(o.repo, digest, { signal: o.signal });
  const reader = stream.getReader();
  let head = new Uint8Array();
  try {
    for (;;) {
      const h = parseHeader(head);
      if (h) return h;
      const { done, value } = await reader.read();
      if (done || head.length > 4096) {
        throw new DecryptionError(
          "Truncated",
          `Checkpoint image "${o.name}": its layer ends before its encryption header`,
        );
      }
      head = new Uint8Array([...head, ...value]);
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

async function readBlob(o: DecryptImportOptions, digest: string, max: number): Promise<Uint8Array> {
  const { stream } = await o.client.getBlob(o.repo, digest, { signal: o.signal });
  const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  if (bytes.length > max || digestBytes(bytes) !== digest) {
    throw new Error(`Checkpoint image "${o.name}": blob ${digest} is too large or does not match`);
  }
  return bytes;
}
