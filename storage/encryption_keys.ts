/**
 * The key ring of a class: `spec.encryption` and its Secret's data into
 * imported keys. Every problem names the field to fix.
 * @module
 */
import type { EncryptionSpec } from "../api/mod.ts";
import { importEncryptionKey, type KeyRing } from "./encryption.ts";

/** Decodes key text: 32 bytes as base64 (44 characters) or hex (64 characters). */
export function decodeKeyMaterial(text: string): Uint8Array | undefined {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) {
    return Uint8Array.from(t.match(/../g)!.map((h) => parseInt(h, 16)));
  }
  if (/^[A-Za-z0-9+/]{43}=$/.test(t)) {
    const bin = atob(t);
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  }
  return undefined;
}

/**
 * Builds the ring of `spec` from the decoded data of the Secret that
 * `spec.secretRef` names; throws an error naming the field for a missing or
 * malformed key.
 */
export async function loadKeyRing(
  spec: EncryptionSpec,
  secret: Record<string, string>,
): Promise<KeyRing> {
  const ref = `Secret "${spec.secretRef.namespace}/${spec.secretRef.name}"`;
  if (!spec.keys?.length) throw new Error("spec.encryption.keys lists no key");
  const byId = new Map<string, Awaited<ReturnType<typeof importEncryptionKey>>>();
  for (const [i, k] of spec.keys.entries()) {
    const field = `spec.encryption.keys[${i}]`;
    const entry = k.secretKey ?? k.id;
    const text = secret[entry];
    if (text === undefined) {
      throw new Error(
        `${field} (id "${k.id}"): ${ref} of spec.encryption.secretRef has no entry "${entry}"`,
      );
    }
    const raw = decodeKeyMaterial(text);
    if (!raw) {
      throw new Error(
        `${field} (id "${k.id}"): entry "${entry}" of ${ref} is not 32 bytes as base64 ` +
          "(44 characters) or hex (64 characters); make one with `openssl rand -base64 32`",
      );
    }
    if (byId.has(k.id)) throw new Error(`${field}: id "${k.id}" is listed twice`);
    byId.set(k.id, await importEncryptionKey(k.id, raw));
  }
  return { active: byId.get(spec.keys[0].id)!, byId };
}
