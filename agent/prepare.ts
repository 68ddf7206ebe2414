/**
 * PrepareRestore on a Kubernetes node: the kubelet pulls the checkpoint image
 * itself when the restored pod starts, so the agent checks that the image's
 * manifest is reachable from this node (a registry HEAD with the class's
 * credentials), which turns "image not found" or "registry unreachable" into
 * an early, clear failure instead of an ImagePullBackOff.
 * @module
 */
import type { PrepareRestoreRequestMsg } from "./_proto.ts";

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

/** Checks that the image's manifest exists; resolves with the image reference. */
export async function prepareImage(
  req: PrepareRestoreRequestMsg,
  opts: { signal?: AbortSignal } = {},
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
