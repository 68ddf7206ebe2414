/**
 * Pushes the local environment's own images (pause, busybox and workload
 * images) to its loopback registry with the `oci/` client. Layers are
 * uncompressed tars read whole into memory: fine for the few MiB these
 * images weigh.
 * @module
 */
import { formatReference, layerMediaType, parseReference, RegistryClient } from "../oci/mod.ts";

/** One layer: an uncompressed tar file. */
export interface LayerFile {
  /** Path of the tar. */
  path: string;
}

/** Options for {@linkcode pushImage}. */
export interface PushImageOptions {
  /** Layers, lowest first. */
  layers: LayerFile[];
  /** Image config `config` section (Entrypoint, Cmd, Env, WorkingDir...). */
  config?: Record<string, unknown>;
  /** Annotations on the manifest (e.g. the checkpoint-image annotation). */
  annotations?: Record<string, string>;
}

/** A pushed image. */
export interface PushedImage {
  /** `host/repository:tag`. */
  reference: string;
  /** `host/repository@sha256:...`. */
  digestReference: string;
  /** Manifest digest. */
  digest: string;
}

/** Pushes an image made of `opts.layers` as `host/repository:tag` (plain HTTP, loopback). */
export async function pushImage(
  host: string,
  repositoryTag: string,
  opts: PushImageOptions,
): Promise<PushedImage> {
  const { repository, tag = "latest" } = parseReference(`${host}/${repositoryTag}`);
  const client = new RegistryClient(host, { insecure: true });
  try {
    const layers = [];
    for (const l of opts.layers) {
      const blob = await client.ensureBlob(repository, await Deno.readFile(l.path));
      layers.push({ mediaType: layerMediaType("none"), ...blob });
    }
    const { digest } = await client.putImage(repository, {
      layers,
      config: opts.config,
      createdBy: "lpm test harness",
      annotations: opts.annotations,
    }, { tag });
    return {
      reference: formatReference({ host, repository, tag }),
      digestReference: formatReference({ host, repository, digest }),
      digest,
    };
  } finally {
    client.close();
  }
}
