/**
 * PrepareRestore on a Kubernetes node: the agent checks that the image's
 * manifest is reachable from this node (a registry HEAD with the class's
 * credentials), which turns "image not found" or "registry unreachable" into
 * an early, clear failure instead of an ImagePullBackOff; then, when it
 * knows the runtime's CRI endpoint, it pulls the image through the CRI, so
 * the restored pod starts without a pull (the transfer happens here, visible
 * as its own phase, not inside the restore). An encrypted image (class with
 * spec.encryption) cannot go through the CRI pull: containerd has no
 * decryptor for it, so the agent decrypts and imports it
 * (`image_decrypt.ts`).
 * @module
 */
import type { PrepareRestoreRequestMsg } from "../contract/proto.ts";
import { parseReference, RegistryClient, RegistryError } from "../oci/mod.ts";
import { criPullImage } from "./cri_image.ts";
import { registryClientOptions } from "./image_oci.ts";
import { importDecryptedImage, isEncryptedImage, readImageManifest } from "./image_decrypt.ts";
import type { ResolvedClass } from "./pipeline.ts";
import { DecryptionError } from "../storage/mod.ts";

/** Options of {@linkcode prepareImage}. */
export interface PrepareOptions {
  /** Cancels the check and the pull. */
  signal?: AbortSignal;
  /** CRI endpoint of the node's runtime; without it the image is only checked. */
  runtimeEndpoint?: string;
  /** Resolves the request's storage class (its keys decrypt an encrypted image). */
  resolveClass?: (name: string) => Promise<ResolvedClass>;
}

/**
 * Checks that the image's manifest exists and, with a runtime endpoint,
 * pulls it into the runtime; resolves with the image reference and, when
 * pulled, the runtime's image id.
 */

/** A registry client for the image `req` names, with its TLS and credentials. */
function registryFor(req: PrepareRestoreRequestMsg, host: string): RegistryClient {
  return new RegistryClient(
    host,
    registryClientOptions({
      repository: req.image,
      insecure: req.insecure,
      caBundle: req.caBundle,
      credentials: req.registryCredentials,
    }),
  );
}

export async function prepareImage(
  req: PrepareRestoreRequestMsg,
  opts: PrepareOptions = {},
): Promise<{ image: string; imageId?: string }> {
  const checked = await checkImage(req, opts);
  if (!opts.runtimeEndpoint) return checked;
  const decrypted = await decryptIfEncrypted(req, opts);
  if (decrypted) return { image: req.image, imageId: decrypted };
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
  const ref = parseReference(req.image);
  const manifest = ref.digest ?? ref.tag ?? "latest";
  const client = registryFor(req, ref.host);
  try {
    const found = await client.headManifest(ref.repository, manifest, { signal: opts.signal });
    if (!found) {
      throw new Error(
        `Checkpoint image "${req.image}" is not available: the registry answered 404 ` +
          "(not pushed, or deleted)",
      );
    }
    if (found.digest && ref.digest && found.digest !== ref.digest) {
      throw new Error(
        `Checkpoint image "${req.image}" resolved to another digest "${found.digest}"`,
      );
    }
    return { image: req.image };
  } catch (err) {
    if (!(err instanceof RegistryError)) throw err;
    if (err.status === 0) {
      throw new Error(
        `Cannot reach the registry of "${req.image}" at ${client.base}: ${err.message}`,
      );
    }
    throw new Error(
      `Checkpoint image "${req.image}" is not available: the registry answered ${err.status}` +
        (err.status === 401 ? " (credentials)" : ""),
    );
  } finally {
    client.close();
  }
}

/**
 * When the image has an encrypted layer: decrypts and imports it (see
 * `image_decrypt.ts`) and resolves with the plain manifest's digest;
 * undefined for a plain image.
 */
async function decryptIfEncrypted(
  req: PrepareRestoreRequestMsg,
  opts: PrepareOptions,
): Promise<string | undefined> {
  const ref = parseReference(req.image);
  const client = registryFor(req, ref.host);
  try {
    const manifest = await readImageManifest(
      client,
      ref.repository,
      ref.digest ?? ref.tag ?? "latest",
    );
    if (!isEncryptedImage(manifest)) return undefined;
    if (!req.storageClassName || !opts.resolveClass) {
      throw new Error(
        `Checkpoint image "${req.image}" is encrypted and the request names no storage class ` +
          "whose spec.encryption keys could decrypt it",
      );
    }
    const cls = await opts.resolveClass(req.storageClassName);
    try {
      return await importDecryptedImage(manifest, {
        client,
        repo: ref.repository,
        name: req.image,
        keys: cls.keys,
        className: cls.name,
        containerdAddress: opts.runtimeEndpoint!,
        signal: opts.signal,
      });
    } catch (err) {
      if (!(err instanceof DecryptionError)) throw err;
      throw new Error(`spec.encryption of storage class "${cls.name}": ${err.message}`);
    } finally {
      cls.store.close?.();
    }
  } finally {
    client.close();
  }
}
