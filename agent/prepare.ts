/**
 * PrepareRestore on a Kubernetes node: the agent checks that the image's
 * manifest is reachable from this node (a registry HEAD with the class's
 * credentials), which turns "image not found" or "registry unreachable" into
 * an early, clear failure instead of an ImagePullBackOff; then, when it
 * knows the runtime's CRI endpoint, it pulls the image through the CRI, so
 * the restored pod starts without a pull (the transfer happens here, visible
 * as its own phase, not inside the restore).
 * @module
 */
import type { PrepareRestoreRequestMsg } from "../contract/proto.ts";
import { criPullImage } from "./cri_image.ts";

/** The parts of an image reference. */
export interface ImageRef {
  /** Registry host[:port]. */
  host: string;
  /** Repository path. */
  repository: string;
  /** Tag or digest. */
  reference: string;
}

/** Splits `host/repo[:tag|@digest]`. */
export function parseImageRef(ref: string): ImageRef {
  const at = ref.indexOf("@");
  let name = ref;
  let reference = "latest";
  if (at >= 0) {
    name = ref.slice(0, at);
    reference = ref.slice(at + 1);
  } else {
    const colon = ref.lastIndexOf(":");
    if (colon > ref.lastIndexOf("/")) {
      name = ref.slice(0, colon);
      reference = ref.slice(colon + 1);
    }
  }
  const slash = name.indexOf("/");
  if (slash < 0) throw new Error(`Image reference "${ref}" has no registry host`);
  return { host: name.slice(0, slash), repository: name.slice(slash + 1), reference };
}

const ACCEPT = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");

/** Options of {@linkcode prepareImage}. */
export interface PrepareOptions {
  /** Cancels the check and the pull. */
  signal?: AbortSignal;
  /** CRI endpoint of the node's runtime; without it the image is only checked. */
  runtimeEndpoint?: string;
}

/**
 * Checks that the image's manifest exists and, with a runtime endpoint,
 * pulls it into the runtime; resolves with the image reference and, when
 * pulled, the runtime's image id.
 */
export async function prepareImage(
  req: PrepareRestoreRequestMsg,
  opts: PrepareOptions = {},
): Promise<{ image: string; imageId?: string }> {
  const checked = await checkImage(req, opts);
  if (!opts.runtimeEndpoint) return checked;
  const creds = req.registryCredentials;
  const imageId = await criPullImage(opts.runtimeEndpoint, req.image, {
    signal: opts.signal,
    auth: creds?.username
      ? { username: creds.username, password: creds.password ?? "" }
      : undefined,
  });
  return { image: req.image, imageId };
}

/** Checks that the image's manifest exists; resolves with the image reference. */
async function checkImage(
  req: PrepareRestoreRequestMsg,
  opts: { signal?: AbortSignal },
): Promise<{ image: string }> {
  const ref = parseImageRef(req.image);
  const scheme = req.insecure ? "http" : "https";
  const client = req.caBundle ? Deno.createHttpClient({ caCerts: [req.caBundle] }) : undefined;
  const headers = new Headers({ accept: ACCEPT });
  const creds = req.registryCredentials;
  if (creds?.username) {
    headers.set("authorization", `Basic ${btoa(`${creds.username}:${creds.password ?? ""}`)}`);
  }
  const url = `${scheme}://${ref.host}/v2/${ref.repository}/manifests/${ref.reference}`;
  try {
    const res = await fetch(url, { method: "HEAD", headers, client, signal: opts.signal });
    await res.body?.cancel();
    if (!res.ok) {
      throw new Error(
        `Checkpoint image "${req.image}" is not available: the registry answered ${res.status}` +
          (res.status === 404
            ? " (not pushed, or deleted)"
            : res.status === 401
            ? " (credentials)"
            : ""),
      );
    }
    const digest = res.headers.get("docker-content-digest");
    if (digest && ref.reference.startsWith("sha256:") && digest !== ref.reference) {
      throw new Error(`Checkpoint image "${req.image}" resolved to another digest "${digest}"`);
    }
    return { image: req.image };
  } catch (err) {
    if ((err as Error).message.startsWith("Checkpoint image")) throw err;
    throw new Error(
      `Cannot reach the registry of "${req.image}" at ${url}: ${(err as Error).message}`,
    );
  } finally {
    client?.close();
  }
}
