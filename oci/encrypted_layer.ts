/**
 * Encrypted checkpoint image layers, after the OCI image encryption
 * convention (containers/ocicrypt, used by containerd's imgcrypt, CRI-O and
 * skopeo): the layer's media type gains `+encrypted`, and the layer
 * descriptor carries how to get its key in `org.opencontainers.image.enc.keys.<protocol>`
 * and the public cipher options in `org.opencontainers.image.enc.pubopts`.
 *
 * lpm's key protocol is `provider.lpm` (ocicrypt's name space for key
 * providers): the annotation holds, base64 JSON, the id of the class key
 * the layer was encrypted with and the format; the layer key itself is
 * derived from that class key and the salt in the blob's header, so no key
 * material is in the image. Tools that follow ocicrypt see an encrypted
 * layer of an unknown key provider and cipher, and do not unpack it; only an
 * agent holding the class's keys decrypts it (`agent/image_decrypt.ts`).
 * @module
 */
import { ENCRYPTION_FORMAT } from "../storage/mod.ts";
import type { Descriptor } from "./media_types.ts";

/** Suffix of ocicrypt's encrypted layer media types. */
export const ENCRYPTED_SUFFIX = "+encrypted";
/** Annotation of lpm's wrapped-key entry (ocicrypt key provider "lpm"). */
export const ENC_KEYS_LPM = "org.opencontainers.image.enc.keys.provider.lpm";
/** ocicrypt's public options annotation. */
export const ENC_PUBOPTS = "org.opencontainers.image.enc.pubopts";
/** The cipher name lpm writes in the public options. */
export const LPM_CIPHER = "LPM_AES_256_GCM_STREAM_HKDF_SHA256";

/** What an encrypted layer says about its key. */
export interface EncryptedLayerInfo {
  /** Id of the class key (spec.encryption.keys[].id). */
  keyId: string;
  /** Blob format, `lpm-aead-v1`. */
  format: string;
}

const b64json = (v: unknown) => btoa(JSON.stringify(v));

/** The descriptor of `plain` (a layer) as an encrypted layer of key `keyId`. */
export function encryptedLayerDescriptor(plain: Descriptor, keyId: string): Descriptor {
  return {
    ...plain,
    mediaType: plain.mediaType + ENCRYPTED_SUFFIX,
    annotations: {
      ...plain.annotations,
      [ENC_KEYS_LPM]: b64json({ kid: keyId, format: ENCRYPTION_FORMAT }),
      [ENC_PUBOPTS]: b64json({ cipher: LPM_CIPHER, hmac: "", cipheroptions: {} }),
    },
  };
}

/** Whether a layer is encrypted (any ocicrypt `+encrypted` media type). */
export function isEncryptedLayer(d: Pick<Descriptor, "mediaType">): boolean {
  return d.mediaType.endsWith(ENCRYPTED_SUFFIX);
}

/**
 * The key of an encrypted layer, or an error that says why lpm cannot
 * decrypt it (another key protocol, a malformed entry, another format).
 */
export function encryptedLayerInfo(d: Descriptor): EncryptedLayerInfo {
  const raw = d.annotations?.[ENC_KEYS_LPM];
  if (!raw) {
    const other = Object.keys(d.annotations ?? {}).filter((k) =>
      k.startsWith("org.opencontainers.image.enc.keys.")
    );
    throw new Error(
      `Layer ${d.digest} is encrypted with ${
        other.length ? other.map((o) => `"${o}"`).join(", ") : "no key annotation"
      }, not lpm's "${ENC_KEYS_LPM}"`,
    );
  }
  let v: { kid?: unknown; format?: unknown };
  try {
    v = JSON.parse(atob(raw));
  } catch {
    throw new Error(`Layer ${d.digest}: annotation "${ENC_KEYS_LPM}" is not base64 JSON`);
  }
  if (typeof v.kid !== "string" || v.format !== ENCRYPTION_FORMAT) {
    throw new Error(
      `Layer ${d.digest}: annotation "${ENC_KEYS_LPM}" names format "${v.format}" ` +
        `(this lpm reads "${ENCRYPTION_FORMAT}") or no key id`,
    );
  }
  return { keyId: v.kid, format: v.format };
}
