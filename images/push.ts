/**
 * Pushes lpm's images from the build layout to a registry, by digest then
 * tag (oci/push.ts's safe order), as `<registry>/lpm/<name>:<tag>`.
 * @module
 */
import { loopbackHost, pushImage } from "../oci/mod.ts";
import type { BuildImagesResult, ImageName } from "./build.ts";

/** One pushed image. */
export interface PushedLpmImage {
  /** controller or agent. */
  name: ImageName;
  /** `registry/lpm/<name>@sha256:...`. */
  reference: string;
  /** `registry/lpm/<name>:<tag>`. */
  tagged: string;
  /** Bytes uploaded (blobs the registry had are skipped). */
  uploadedBytes: number;
}

/**
 * Pushes every image of `built` to `registry` (`host:port`); plain HTTP only
 * for a loopback registry (the local environment's).
 */
export async function pushLpmImages(
  built: BuildImagesResult,
  registry: string,
): Promise<PushedLpmImage[]> {
  const out: PushedLpmImage[] = [];
  for (const img of built.images) {
    const target = `${registry}/lpm/${img.name}:${built.tag}`;
    const r = await pushImage(built.layoutDir, target, {
      ref: img.manifest.digest,
      insecure: loopbackHost(registry),
      mountFrom: img.name === "agent" ? "lpm/controller" : undefined,
    });
    out.push({
      name: img.name,
      reference: r.reference,
      tagged: r.tagged ?? target,
      uploadedBytes: r.uploadedBytes,
    });
  }
  return out;
}
