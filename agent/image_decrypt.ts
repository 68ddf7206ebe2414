/**
 * An encrypted checkpoint image onto this node: containerd cannot unpack an
 * ocicrypt `+encrypted` layer without imgcrypt's stream processor
 * (`ctd-decoder`, configured under `[stream_processors]`), and even with it
 * would not know lpm's key provider. So the target's agent does it, in one
 * streaming pass: the layer blob from the registry, its digest checked,
 * through decryption with the class's keys (every chunk authenticated), into
 * an OCI layout tar stream (the image's own config, whose diff_id is the
 * plaintext's digest as ocicrypt has it, and a plain manifest) piped into
 * containerd's `ctr images import` (`containerd_import.ts`), which verifies
 * every blob's digest, stores and unpacks it in the `k8s.io` namespace under
 * the name the restored pod uses (the encrypted image's `repository@digest`):
 * the kubelet finds it (`IfNotPresent`) and never pulls. Plaintext touches
 * only this node's containerd store, no temporary file.
 * @module
 */
import {
  CONFIG_MEDIA_TYPE,
  digestBytes,
  DigestStream,
  encryptedLayerInfo,
  type ImageManifest,
  isEncryptedLayer,
  layerMediaType,
  LPM,
  MANIFEST_MEDIA_TYPE,
  type RegistryClient,
} from "../oci/mod.ts";
import { decryptStream, type KeyRing, plainSizeOf } from "../storage/mod.ts";
import { importImageStream } from "./containerd_import.ts";

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
 * Decrypts the image's single encrypted layer into containerd as
 * `opts.name`; resolves with the plain manifest's digest.
 */
export async function importDecryptedImage(
  manifest: ImageManifest,
  opts: DecryptImportOptions,
): Promise<string> {
  checkKeys(manifest, opts);
  const layer = manifest.layers[0];
  const configBytes = await readBlob(opts, manifest.config.digest, 1 << 20);
  const config = JSON.parse(new TextDecoder().decode(configBytes)) as {
    rootfs?: { diff_ids?: string[] };
  };
  const diffId = config.rootfs?.diff_ids?.[0] ?? "";
  if (!/^sha256:[0-9a-f]{64}$/.test(diffId)) {
    throw new Error(`Checkpoint image "${opts.name}": its config has no valid diff_id`);
  }
  const { stream } = await opts.client.getBlob(opts.repo, layer.digest, { signal: opts.signal });
  const blobDigest = new DigestStream();
  const headerRead = Promise.withResolvers<number>();
  const plain = stream.pipeThrough(blobDigest).pipeThrough(decryptStream(opts.keys!, {
    what: `checkpoint image "${opts.name}"`,
    onHeader: (h) => headerRead.resolve(plainSizeOf(layer.size, h)),
  })).pipeThrough(blobCheck(blobDigest, layer.digest, opts.name));
  // The layer's size is known once the header is read: start the stream to get it.
  const reader = plain.getReader();
  const first = await reader.read();
  // The decryptor calls onHeader before it yields anything (or errors): resolved by now.
  const plainSize = await headerRead.promise;
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
  const tar = layoutTar({
    name: opts.name,
    config: { digest: manifest.config.digest, bytes: configBytes },
    manifest: { digest: manifestDigest, bytes: plainManifest },
    layer: { digest: diffId, size: plainSize, first: first.value, rest: reader },
  });
  await importImageStream(tar, { address: opts.containerdAddress, signal: opts.signal });
  return manifestDigest;
}

/** Errors the stream at its end when the blob's digest is not the manifest's. */
function blobCheck(d: DigestStream, want: string, name: string) {
  return new TransformStream<Uint8Array, Uint8Array>({
    flush() {
      if (d.digest !== want) {
        throw new Error(
          `Checkpoint image "${name}": layer blob digest ${d.digest}, manifest says ${want}`,
        );
      }
    },
  });
}

async function readBlob(o: DecryptImportOptions, digest: string, max: number): Promise<Uint8Array> {
  const { stream } = await o.client.getBlob(o.repo, digest, { signal: o.signal });
  const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  if (bytes.length > max || digestBytes(bytes) !== digest) {
    throw new Error(`Checkpoint image "${o.name}": blob ${digest} is too large or does not match`);
  }
  return bytes;
}

interface LayoutParts {
  name: string;
  config: { digest: string; bytes: Uint8Array };
  manifest: { digest: string; bytes: Uint8Array };
  layer: {
    digest: string;
    size: number;
    first?: Uint8Array;
    rest: ReadableStreamDefaultReader<Uint8Array>;
  };
}

/** An OCI layout tarball as a stream: small files, then the layer streamed, then the end. */
function layoutTar(p: LayoutParts): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  const index = enc.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [{
      mediaType: MANIFEST_MEDIA_TYPE,
      digest: p.manifest.digest,
      size: p.manifest.bytes.length,
      annotations: { "io.containerd.image.name": p.name },
    }],
  }));
  const small: [string, Uint8Array][] = [
    ["oci-layout", enc.encode(JSON.stringify({ imageLayoutVersion: "1.0.0" }))],
    ["index.json", index],
    [`blobs/sha256/${p.config.digest.slice(7)}`, p.config.bytes],
    [`blobs/sha256/${p.manifest.digest.slice(7)}`, p.manifest.bytes],
  ];
  let sent = 0;
  let stage = 0;
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      if (stage === 0) {
        for (const [n, b] of small) {
          c.enqueue(tarHeader(n, b.length));
          c.enqueue(b);
          c.enqueue(padding(b.length));
        }
        c.enqueue(tarHeader(`blobs/sha256/${p.layer.digest.slice(7)}`, p.layer.size));
        stage = 1;
        if (p.layer.first) {
          sent += p.layer.first.length;
          c.enqueue(p.layer.first);
        }
        return;
      }
      const { done, value } = await p.layer.rest.read();
      if (!done) {
        sent += value.length;
        c.enqueue(value);
        return;
      }
      if (sent !== p.layer.size) {
        c.error(new Error(`Decrypted layer has ${sent} bytes, expected ${p.layer.size}`));
        return;
      }
      c.enqueue(padding(sent));
      c.enqueue(new Uint8Array(1024));
      c.close();
    },
    cancel(reason) {
      return p.layer.rest.cancel(reason);
    },
  });
}

function padding(n: number): Uint8Array {
  return new Uint8Array((512 - (n % 512)) % 512);
}

/** A ustar header of a regular file (names here are under 100 bytes). */
function tarHeader(name: string, size: number): Uint8Array {
  const h = new Uint8Array(512);
  const put = (off: number, len: number, s: string) =>
    h.set(new TextEncoder().encode(s).subarray(0, len), off);
  const octal = (n: number, len: number) => n.toString(8).padStart(len - 1, "0") + "\0";
  put(0, 100, name);
  put(100, 8, octal(0o644, 8));
  put(108, 8, octal(0, 8));
  put(116, 8, octal(0, 8));
  put(124, 12, octal(size, 12));
  put(136, 12, octal(0, 12));
  put(148, 8, "        ");
  put(156, 1, "0");
  put(257, 6, "ustar\0");
  put(263, 2, "00");
  const sum = h.reduce((a, b) => a + b, 0);
  put(148, 8, octal(sum, 7) + " ");
  return h;
}
