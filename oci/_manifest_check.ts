/**
 * Shape checks of manifests and descriptors read from outside (a registry,
 * a layout someone handed us): digests in the one supported form, sizes
 * non-negative integers under a limit, so a lying manifest is refused
 * before any blob is fetched or read.
 * @module
 */
import { LIMITS } from "../confine/mod.ts";
import type { Descriptor, ImageManifest } from "./media_types.ts";

const SHA256 = /^sha256:[a-f0-9]{64}$/;

/** Checks a descriptor at `field` of `what`; returns it. */
export function checkDescriptor(
  d: unknown,
  field: string,
  what: string,
  maxSize: number = LIMITS.entryBytes,
): Descriptor {
  if (!d || typeof d !== "object" || Array.isArray(d)) {
    throw new Error(`Invalid ${what}: "${field}" is not a descriptor object`);
  }
  const { digest, size, mediaType } = d as Record<string, unknown>;
  if (typeof digest !== "string" || !SHA256.test(digest)) {
    throw new Error(
      `Invalid ${what}: "${field}.digest" ${JSON.stringify(digest)} is not sha256:<64 hex>`,
    );
  }
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    throw new Error(
      `Invalid ${what}: "${field}.size" ${JSON.stringify(size)} is not a non-negative integer`,
    );
  }
  if (size > maxSize) {
    throw new Error(`Invalid ${what}: "${field}.size" ${size} is over the limit ${maxSize}`);
  }
  if (mediaType !== undefined && typeof mediaType !== "string") {
    throw new Error(`Invalid ${what}: "${field}.mediaType" is not a string`);
  }
  return d as Descriptor;
}

/** Parses and checks an image manifest (config and layer descriptors). */
export function checkManifest(bytes: Uint8Array, what: string): ImageManifest {
  let m: unknown;
  try {
    m = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new Error(`Invalid ${what}: not JSON (${(err as Error).message})`);
  }
  if (!m || typeof m !== "object" || Array.isArray(m)) {
    throw new Error(`Invalid ${what}: not a JSON object`);
  }
  const doc = m as Record<string, unknown>;
  if (!doc.config || !Array.isArray(doc.layers)) {
    throw new Error(
      `Invalid ${what}: not an image manifest (no "config" and "layers"; image indexes are not supported)`,
    );
  }
  checkDescriptor(doc.config, "config", what, LIMITS.manifestBytes);
  doc.layers.forEach((l, i) => checkDescriptor(l, `layers[${i}]`, what));
  if (doc.annotations !== undefined) {
    const a = doc.annotations;
    if (
      !a || typeof a !== "object" || Array.isArray(a) ||
      Object.values(a).some((v) => typeof v !== "string")
    ) {
      throw new Error(`Invalid ${what}: "annotations" is not a map of strings`);
    }
  }
  return m as ImageManifest;
}
