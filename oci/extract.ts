/**
 * Reads a checkpoint image back into an archive on disk, verifying every
 * digest: the manifest against the index, the config and layer blobs
 * against the manifest, and the unpacked archive against the config's
 * `diff_id`.
 * @module
 */
import { DigestStream } from "./digest.ts";
import { decompressStream } from "./compress.ts";
import { OciLayout } from "./layout.ts";
import { compressionOf, type ImageManifest } from "./media_types.ts";

/** Reads and verifies the manifest `ref` (name or digest) of a layout. */
export async function readManifest(
  layout: OciLayout,
  ref?: string,
): Promise<{ manifest: ImageManifest; digest: string }> {
  const desc = await layout.resolve(ref);
  const bytes = await layout.readBytes(desc.digest);
  const manifest = JSON.parse(new TextDecoder().decode(bytes)) as ImageManifest;
  if (!manifest.layers?.length) {
    throw new Error(`Image ${desc.digest} in "${layout.dir}" has no layers`);
  }
  return { manifest, digest: desc.digest };
}

/**
 * Writes the archive carried by the checkpoint image `ref` of the layout
 * `layoutDir` to `outPath`. Nothing is left at `outPath` when a digest does
 * not match.
 */
export async function extractCheckpointArchive(
  layoutDir: string,
  outPath: string,
  opts: { ref?: string } = {},
): Promise<{ archiveDigest: string; size: number; manifestDigest: string }> {
  const layout = await OciLayout.open(layoutDir);
  const { manifest, digest } = await readManifest(layout, opts.ref);
  const config = JSON.parse(
    new TextDecoder().decode(await layout.readBytes(manifest.config.digest)),
  );
  const layer = manifest.layers[0];
  const diffId = config?.rootfs?.diff_ids?.[0] as string | undefined;
  const layerHash = new DigestStream();
  const archiveHash = new DigestStream();
  const tmp = `${outPath}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  try {
    const out = await Deno.open(tmp, { write: true, createNew: true });
    await decompressStream(
      (await layout.openBlob(layer.digest)).pipeThrough(layerHash),
      compressionOf(layer.mediaType),
    ).pipeThrough(archiveHash).pipeTo(out.writable);
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
