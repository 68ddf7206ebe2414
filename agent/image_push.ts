/**
 * An {@linkcode ImagePublisher} over the OCI distribution API: the CRI-O
 * checkpoint image format (one uncompressed layer that is the archive itself,
 * the checkpoint annotations on the manifest), blobs streamed from the file,
 * the manifest pushed by digest, the tag pushed last by `tag()`.
 *
 * The layer digest is the archive's sha256, which the store already computed,
 * so the archive is read once for the store and once for the upload, and
 * never hashed twice. An encrypted archive comes as a stream instead (`body`,
 * the same encrypted chunks the store gets, `pipeline.ts`), so it is
 * encrypted once, on its way out, and never written to disk encrypted. (Kept small on purpose; `oci/` owns the registry client
 * and the full image builder, and this publisher can delegate to the builder
 * when it offers the same push-by-digest-then-tag split.)
 * @module
 */
import type { ImagePublisher, PushedImage, RegistrySettings } from "./pipeline.ts";
import {
  digestFile,
  encryptedLayerDescriptor,
  formatReference,
  layerMediaType,
  LPM,
  parseReference,
  RegistryClient,
} from "../oci/mod.ts";
import { registryClientOptions } from "./image_oci.ts";
import { ENCRYPTION_FORMAT } from "../storage/mod.ts";

/**
 * The descriptors of layers that must already be in `repo` (pre-copy's
 * parent layer, pushed before the freeze): checked, never uploaded here.
 */
async function baseLayers(
  client: RegistryClient,
  repo: string,
  layers: { digest: string; size: number }[],
  encrypted: boolean,
): Promise<{ mediaType: string; digest: string; size: number }[]> {
  if (layers.length && encrypted) {
    throw new Error("An encrypted checkpoint image cannot have base layers (pre-copy)");
  }
  for (const l of layers) {
    const size = await client.blobSize(repo, l.digest);
    if (size !== l.size) {
      throw new Error(
        `Base layer ${l.digest} is ${
          size === undefined ? "not in the repository" : `${size} bytes there`
        }, expected ${l.size} bytes (was the pre-copy's image deleted?)`,
      );
    }
  }
  return layers.map((l) => ({ mediaType: layerMediaType("none"), ...l }));
}

/**
 * Pushes a pre-copy round's image: the earlier rounds' layers (`baseLayers`,
 * already in the repository: checked, not sent) and the tar `layerPath`
 * (this round's CRIU images as `checkpoint/.lpm-round-<n>/...`) as an
 * uncompressed layer on top, the manifest by digest (no tag: the final
 * image, which references the layers, is the one people find). The target
 * pulls it before the next round or the freeze.
 */
export async function pushParentImage(
  layerPath: string,
  opts: {
    registry: RegistrySettings;
    tag: string;
    annotations: Record<string, string>;
    baseLayers?: { digest: string; size: number }[];
    signal?: AbortSignal;
    onProgress?: (bytes: number) => void;
  },
): Promise<{ reference: string; digest: string; layer: { digest: string; size: number } }> {
  const dest = parseReference(`${opts.registry.repository}:${opts.tag}`);
  const repo = dest.repository;
  const client = new RegistryClient(dest.host, registryClientOptions(opts.registry));
  try {
    const { digest: layerDigest, size } = await digestFile(layerPath);
    let sent = 0;
    const stream = (await Deno.open(layerPath)).readable.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, c) {
          sent += chunk.length;
          opts.onProgress?.(sent);
          c.enqueue(chunk);
        },
      }),
    );
    await client.streamBlob(repo, { stream, digest: Promise.resolve(layerDigest) }, {
      signal: opts.signal,
    });
    const base = await baseLayers(client, repo, opts.baseLayers ?? [], false);
    const { digest } = await client.putImage(repo, {
      layers: [...base, { mediaType: layerMediaType("none"), digest: layerDigest, size }],
      annotations: opts.annotations,
    }, { signal: opts.signal });
    return {
      reference: formatReference({ host: dest.host, repository: repo, digest }),
      digest,
      layer: { digest: layerDigest, size },
    };
  } finally {
    client.close();
  }
}

/** Creates the publisher. */
export function createImagePublisher(): ImagePublisher {
  return {
    async push(archivePath, opts): Promise<PushedImage> {
      const dest = parseReference(`${opts.registry.repository}:${opts.tag}`);
      const repo = dest.repository;
      const client = new RegistryClient(dest.host, registryClientOptions(opts.registry));
      try {
        if (opts.body && (opts.size === undefined || opts.sha256 === undefined)) {
          throw new Error("A layer given as a stream needs its size and sha256");
        }
        const size = opts.size ?? (await Deno.stat(archivePath)).size;
        // Hashed here only when the caller did not pass the store's digest.
        const layerDigestP = opts.sha256 === undefined
          ? digestFile(archivePath).then((d) => d.digest)
          : Promise.resolve(opts.sha256).then((hex) => `sha256:${hex}`);
        // Awaited only after the data went up: an earlier failure must not leave it unhandled.
        layerDigestP.catch(() => {});
        let sent = 0;
        const source = opts.body ?? (await Deno.open(archivePath)).readable;
        const counted = source.pipeThrough(
          new TransformStream<Uint8Array, Uint8Array>({
            transform(chunk, c) {
              sent += chunk.length;
              opts.onProgress?.(sent);
              c.enqueue(chunk);
            },
          }),
        );
        const layerDigest = await client.streamBlob(repo, {
          stream: counted,
          digest: layerDigestP,
        }, { signal: opts.signal });
        const plain = { mediaType: layerMediaType("none"), digest: layerDigest, size };
        const enc = opts.encryption;
        const base = await baseLayers(client, repo, opts.baseLayers ?? [], enc !== undefined);
        const { digest, bytes } = await client.putImage(repo, {
          layers: [...base, enc ? encryptedLayerDescriptor(plain, enc.keyId) : plain],
          // ocicrypt: an encrypted layer's diff_id is its plaintext's digest.
          ...(enc ? { diffIds: [`sha256:${await enc.plainSha256}`] } : {}),
          // The layer is the archive itself (encrypted or not): its digest is the stored sha256.
          annotations: {
            ...opts.annotations,
            [LPM.archiveSha256]: layerDigest.slice(7),
            ...(enc ? { [LPM.archiveEncryption]: ENCRYPTION_FORMAT } : {}),
          },
        }, { signal: opts.signal });
        return {
          digest,
          reference: formatReference({ host: dest.host, repository: repo, digest }),
          tag: () =>
            client.putManifest(repo, opts.tag, bytes, { signal: opts.signal }).then(
              () => {},
            ).finally(() => client.close()),
        };
      } catch (err) {
        client.close();
        await opts.body?.cancel(err).catch(() => {}); // never read (or already cancelled)
        throw err;
      }
    },
  };
}
