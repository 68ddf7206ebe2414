/**
 * An {@linkcode ImagePublisher} over the `oci/` module: builds the checkpoint
 * image into an OCI layout in the operation's work dir (with layer
 * compression, gzip or zstd), pushes blobs and the manifest by digest, and
 * leaves the tag to `tag()`. It costs a copy of the archive on disk (the
 * layout's layer blob) and runs after the store has the archive; it pays off
 * when the registry link is slower than compression (cross-site restores).
 * The default publisher (`image_push.ts`) streams the archive uncompressed
 * while the store reads it.
 * @module
 */
import {
  buildCheckpointImage,
  type Compression,
  parseReference,
  pushImage,
  RegistryClient,
  type RegistryClientOptions,
} from "../oci/mod.ts";
import type { ImagePublisher, PushedImage, RegistrySettings } from "./pipeline.ts";

/** Options for {@linkcode createOciImagePublisher}. */
export interface OciImagePublisherOptions {
  /** Layer compression (default gzip). */
  compression?: Compression;
  /** Directory for layouts (default: next to the archive). */
  workDir?: string;
}

/** The `oci/` client options of a class's registry settings. */
export function registryClientOptions(registry: RegistrySettings): RegistryClientOptions {
  return {
    insecure: registry.insecure,
    caCerts: registry.caBundle ? [registry.caBundle] : undefined,
    credentials: registry.credentials?.username
      ? { username: registry.credentials.username, password: registry.credentials.password }
      : undefined,
  };
}

/** Creates the publisher. */
export function createOciImagePublisher(opts: OciImagePublisherOptions = {}): ImagePublisher {
  return {
    async push(archivePath, p): Promise<PushedImage> {
      if (p.encryption || p.body) {
        await p.body?.cancel().catch(() => {});
        // Compressing ciphertext gains nothing; this publisher builds plain layers only.
        throw new Error(
          "The compressing image publisher does not push encrypted archives; " +
            "use the default publisher for a class with spec.encryption",
        );
      }
      const layoutDir = await Deno.makeTempDir({
        dir: opts.workDir ?? archivePath.replace(/\/[^/]*$/, ""),
        prefix: ".oci-",
      });
      const registry = p.registry;
      const clientOpts = registryClientOptions(registry);
      const target = `${registry.repository}:${p.tag}`;
      const dest = parseReference(target);
      const client = new RegistryClient(dest.host, clientOpts);
      try {
        const size = p.size ?? (await Deno.stat(archivePath)).size;
        const image = await buildCheckpointImage(archivePath, {
          containerName: p.containerName,
          layoutDir,
          compression: opts.compression ?? "gzip",
          annotations: p.annotations,
          skipValidation: true,
          onProgress: (b) => p.onProgress?.(Math.floor(b / 2)),
        });
        const pushed = await pushImage(image, target, {
          ...clientOpts,
          client,
          skipTag: true,
          signal: p.signal,
          onProgress: (done, total) =>
            p.onProgress?.(Math.floor(size / 2 + (total ? (done / total) * (size / 2) : 0))),
        });
        const manifestBytes = new Uint8Array(
          await Deno.readFile(`${layoutDir}/blobs/sha256/${pushed.digest.slice(7)}`),
        );
        return {
          digest: pushed.digest,
          reference: pushed.reference,
          tag: async () => {
            try {
              await client.putManifest(dest.repository, p.tag, manifestBytes);
            } finally {
              client.close();
            }
          },
        };
      } catch (err) {
        client.close();
        throw err;
      } finally {
        await Deno.remove(layoutDir, { recursive: true }).catch(() => {});
      }
    },
  };
}
