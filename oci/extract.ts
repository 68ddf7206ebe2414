/**
 * Reads a checkpoint image back into an archive on disk, verifying every
 * digest: the manifest against the index, the config and layer blobs
 * against the manifest, and the unpacked archive against the config's
 * `diff_id`.
 * @module
 */
import { boundedInflate, LIMITS, limitStream } from "../confine/mod.ts";
import { DigestStream } from "./digest.ts";
import { decompressStream } from "./compress.ts";
import { OciLayout } from "./layout.ts";
import { checkManifest } from "./_manifest_check.ts";
import { compressionOf, type ImageManifest } from "./media_types.ts";

/** Reads and verifies the manifest `ref` (name or digest) of a layout. */
export async function readManifest(
  layout: OciLayout,
  ref?: string,
): Promise<{ manifest: ImageManifest; digest: string }> {
  const desc = await layout.resolve(ref);
  const bytes = await layout.readBytes(desc.digest);
  const manifest = checkManifest(bytes, `manifest ${desc.digest} in "${layout.dir}"`);
  if (!manifest.layers.length) {
    throw new Error(`Image ${desc.digest} in "${layout.dir}" has no layers`);
  }
  return { manifest, digest: desc.digest };
}

/** Options of {@linkcode extractCheckpointArchive}. */
export interface ExtractArchiveOptions {
  /** Manifest name or digest (default: the only one). */
  ref?: string;
  /** Most bytes the archive may have once decompressed (default `LIMITS.inflatedBytes`). */
  maxBytes?: number;
  /** Most archive bytes per layer byte (default `LIMITS.inflateRatio`). */
  maxRatio?: number;
}

/**
 * Writes the archive carried by the checkpoint image `ref` of the layout
 * `layoutDir` to `outPath`. The layer blob must have the size the manifest
 * says before it is read, its decompression is bounded, and nothing is left
 * at `outPath` when a digest, a size or a bound does not hold.
 */
export async function extractCheckpointArchive(
  layoutDir: string,
  outPath: string,
  opts: ExtractArchiveOptions = {},
): Promise<{ archiveDigest: string; size: number; manifestDigest: string }> {
  const layout = await OciLayout.open(layoutDir);
  const { manifest, digest } = await readManifest(layout, opts.ref);
  let config;
  try {
    config = JSON.parse(new TextDecoder().decode(await layout.readBytes(manifest.config.digest)));
  } catch (err) {
    throw new Error(
      `Config ${manifest.config.digest} of image ${digest}: ${(err as Error).message}`,
    );
  }
  const layer = manifest.layers[0];
  const blobSize = (await Deno.stat(layout.blobPath(layer.digest)).catch(() => undefined))?.size;
  if (blobSize !== layer.size) {
    throw new Error(
      `Layer ${layer.digest} of image ${digest} is ${blobSize ?? "missing"} bytes on disk, ` +
        `the manifest says ${layer.size}`,
    );
  }
  const kind = compressionOf(layer.mediaType);
  const diffId = config?.rootfs?.diff_ids?.[0] as string | undefined;
  const layerHash = new DigestStream();
  const archiveHash = new DigestStream();
  const tmp = `${outPath}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  try {
    const out = await Deno.open(tmp, { write: true, createNew: true });
    const blob = limitStream(
      (await layout.openBlob(layer.digest)).pipeThrough(layerHash),
      layer.size,
      `layer ${layer.digest} of image ${digest}`,
    );
    const archive = kind === "none"
      ? blob
      : boundedInflate(blob, (s) => decompressStream(s, kind), {
        what: `layer ${layer.digest} of image ${digest}`,
        maxBytes: opts.maxBytes ?? LIMITS.inflatedBytes,
        maxRatio: opts.maxRatio,
      });
    await archive.pipeThrough(archiveHash).pipeTo(out.writable);
    if (layerHash.size !== layer.size || layerHash.digest !== layer.digest) {
      throw new Error(
        `Layer ${layer.digest} of image ${digest} is corrupt: ${layerHash.size} bytes with digest ` +
          `${layerHash.digest}, expected ${layer.size} bytes`,
      );
    }
    if (diffId && archiveHash.digest !== diffId) {
      throw new Error(
        `Archive of image ${digest} has digest ${archiveHash.digest}, but the config's diff_id is ${diffId}`,
      );
    }
    await Deno.rename(tmp, outPath);
    return { archiveDigest: archiveHash.digest, size: archiveHash.size, manifestDigest: digest };
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}
