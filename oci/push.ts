/**
 * Pushes an image from an OCI layout to a registry: every blob first
 * (skipped when present, mounted from another repository when asked,
 * uploaded otherwise), then a check that every blob is there, then the
 * manifest by digest, and only then the tag, so a tag never names an image
 * with missing blobs.
 * @module
 */
import type { CheckpointImage } from "./build.ts";
import { fileStream } from "./digest.ts";
import { readManifest } from "./extract.ts";
import { OciLayout } from "./layout.ts";
import { MANIFEST_MEDIA_TYPE } from "./media_types.ts";
import { formatReference, parseReference } from "./reference.ts";
import { RegistryClient, type RegistryClientOptions } from "./registry_client.ts";

/** Options of {@linkcode pushImage}. */
export interface PushOptions extends RegistryClientOptions {
  /** Image in the layout (ref name or digest); default: the only one, or the built image's. */
  ref?: string;
  /** A repository of the same registry to mount blobs from before uploading. */
  mountFrom?: string;
  /** Chunk size for chunked uploads (absent: monolithic streamed PUT). */
  chunkSize?: number;
  /** Push by digest only, leave the tag to the caller (`client.putManifest`). */
  skipTag?: boolean;
  /** Progress: bytes of blobs uploaded (or found) so far, and the total. */
  onProgress?: (done: number, total: number) => void;
  /** Cancels the push. */
  signal?: AbortSignal;
  /** A client to reuse (else one is made from these options and closed). */
  client?: RegistryClient;
}

/** What {@linkcode pushImage} published. */
export interface PushResult {
  /** `host/repo@sha256:...`. */
  reference: string;
  /** `host/repo:tag` when tagged. */
  tagged?: string;
  /** Manifest digest. */
  digest: string;
  /** Bytes uploaded (blobs already present or mounted excluded). */
  uploadedBytes: number;
}

/**
 * Pushes the image of `layoutOrImage` (a layout directory or a built
 * {@linkcode CheckpointImage}) to `target` (`host/repo:tag`).
 */
export async function pushImage(
  layoutOrImage: string | CheckpointImage,
  target: string,
  opts: PushOptions = {},
): Promise<PushResult> {
  const dir = typeof layoutOrImage === "string" ? layoutOrImage : layoutOrImage.layoutDir;
  const ref = opts.ref ??
    (typeof layoutOrImage === "string" ? undefined : layoutOrImage.manifest.digest);
  const dest = parseReference(target);
  const layout = await OciLayout.open(dir);
  const { manifest, digest } = await readManifest(layout, ref);
  const manifestBytes = await layout.readBytes(digest);
  const client = opts.client ?? new RegistryClient(dest.host, opts);
  const repo = dest.repository;
  try {
    const blobs = [manifest.config, ...manifest.layers];
    const total = blobs.reduce((n, b) => n + b.size, 0);
    let done = 0;
    let uploaded = 0;
    for (const b of blobs) {
      opts.signal?.throwIfAborted();
      if (!(await layout.hasBlob(b.digest, b.size))) {
        throw new Error(`Cannot push "${target}": blob ${b.digest} is missing from "${dir}"`);
      }
      let present = (await client.blobSize(repo, b.digest)) === b.size;
      if (!present && opts.mountFrom && opts.mountFrom !== repo) {
        present = await client.mountBlob(repo, b.digest, opts.mountFrom);
      }
      if (!present) {
        const base = done;
        await client.uploadBlob(
          repo,
          b,
          (offset) => fileStream(layout.blobPath(b.digest), { offset }),
          {
            chunkSize: opts.chunkSize,
            signal: opts.signal,
            onProgress: (n) => opts.onProgress?.(base + n, total),
          },
        );
        uploaded += b.size;
      }
      done += b.size;
      opts.onProgress?.(done, total);
    }
    // Manifest last, and only when the registry holds every blob it names.
    for (const b of blobs) {
      const size = await client.blobSize(repo, b.digest);
      if (size !== b.size) {
        throw new Error(
          `Cannot push "${target}": after upload the registry has blob ${b.digest} ` +
            `${
              size === undefined ? "missing" : `with ${size} bytes, not ${b.size}`
            }; manifest not pushed`,
        );
      }
    }
    const mediaType = manifest.mediaType ?? MANIFEST_MEDIA_TYPE;
    await client.putManifest(repo, digest, manifestBytes, { mediaType });
    let tagged: string | undefined;
    if (dest.tag && !opts.skipTag) {
      await client.putManifest(repo, dest.tag, manifestBytes, { mediaType });
      tagged = formatReference({ host: dest.host, repository: repo, tag: dest.tag });
    }
    return {
      reference: formatReference({ host: dest.host, repository: repo, digest }),
      tagged,
      digest,
      uploadedBytes: uploaded,
    };
  } finally {
    if (!opts.client) client.close();
  }
}
