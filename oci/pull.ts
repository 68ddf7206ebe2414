/**
 * Pulls an image from a registry into an OCI layout directory, verifying
 * the manifest digest and every blob's digest and size as it streams to
 * disk; a blob that fails verification leaves nothing behind.
 * @module
 */
import { OciLayout } from "./layout.ts";
import { checkManifest } from "./_manifest_check.ts";
import { type ImageManifest, MANIFEST_MEDIA_TYPE } from "./media_types.ts";
import { parseReference } from "./reference.ts";
import { RegistryClient, type RegistryClientOptions } from "./registry_client.ts";

/** Options of {@linkcode pullImage}. */
export interface PullOptions extends RegistryClientOptions {
  /** Name in the layout index (default: the tag, else the digest). */
  refName?: string;
  /** Progress: blob bytes written so far, and the total. */
  onProgress?: (done: number, total: number) => void;
  /** Cancels the pull. */
  signal?: AbortSignal;
  /** A client to reuse. */
  client?: RegistryClient;
}

/** What {@linkcode pullImage} wrote. */
export interface PullResult {
  /** The layout directory. */
  layoutDir: string;
  /** Name of the image in the layout. */
  refName: string;
  /** Manifest digest. */
  digest: string;
  /** The manifest. */
  manifest: ImageManifest;
}

/** Pulls `ref` (`host/repo:tag` or `host/repo@sha256:...`) into the layout `dir`. */
export async function pullImage(
  ref: string,
  dir: string,
  opts: PullOptions = {},
): Promise<PullResult> {
  const src = parseReference(ref);
  const which = src.digest ?? src.tag;
  if (!which) throw new Error(`Cannot pull "${ref}": give a tag or a digest`);
  const client = opts.client ?? new RegistryClient(src.host, opts);
  const repo = src.repository;
  try {
    const got = await client.getManifest(repo, which);
    // Checked before any blob is fetched: digests in form, sizes bounded.
    const manifest = checkManifest(got.bytes, `manifest of "${ref}" (${got.mediaType})`);
    const layout = await OciLayout.open(dir, { create: true });
    const blobs = [manifest.config, ...manifest.layers];
    const total = blobs.reduce((n, b) => n + b.size, 0);
    let done = 0;
    for (const b of blobs) {
      opts.signal?.throwIfAborted();
      if (!(await layout.hasBlob(b.digest, b.size))) {
        const { stream, size } = await client.getBlob(repo, b.digest, { signal: opts.signal });
        if (size !== undefined && size !== b.size) {
          await stream.cancel();
          throw new Error(
            `Cannot pull "${ref}": blob ${b.digest} is ${size} bytes at the registry, the manifest says ${b.size}`,
          );
        }
        try {
          await layout.writeBlob(stream, { digest: b.digest, size: b.size });
        } catch (err) {
          throw new Error(`Cannot pull "${ref}": ${(err as Error).message}`);
        }
      }
      done += b.size;
      opts.onProgress?.(done, total);
    }
    const written = await layout.writeBytes(got.bytes);
    const refName = opts.refName ?? src.tag ?? got.digest;
    await layout.addManifest(
      { mediaType: manifest.mediaType ?? MANIFEST_MEDIA_TYPE, ...written },
      refName,
    );
    return { layoutDir: dir, refName, digest: got.digest, manifest };
  } finally {
    if (!opts.client) client.close();
  }
}
