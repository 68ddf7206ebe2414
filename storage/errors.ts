/**
 * The one error type every storage provider throws: a machine-readable
 * `code`, plus the provider, the location (endpoint/bucket or path) and the
 * cause in a message that tells the operator what to fix.
 * @module
 */

/** What went wrong, independent of the provider. */
export type StorageErrorCode =
  | "Unauthorized"
  | "NotFound"
  | "Unreachable"
  | "PermissionDenied"
  | "NoSpace"
  | "DigestMismatch"
  | "SizeMismatch"
  | "Aborted"
  | "InvalidKey"
  | "InvalidConfig"
  | "Unknown";

/** Options for {@linkcode StorageError}. */
export interface StorageErrorOptions {
  /** Provider name, e.g. "s3". */
  provider: string;
  /** Endpoint + bucket or filesystem path the provider works on. */
  location: string;
  /** Object key concerned, if any. */
  key?: string;
  /** The underlying error. */
  cause?: unknown;
}

/** A storage failure with a code, the provider and where it happened. */
export class StorageError extends Error {
  /** What went wrong. */
  readonly code: StorageErrorCode;
  /** Provider name. */
  readonly provider: string;
  /** Endpoint/bucket or path. */
  readonly location: string;
  /** Object key concerned, if any. */
  readonly key?: string;

  /** Builds the error; `message` should already say what failed and why. */
  constructor(code: StorageErrorCode, message: string, opts: StorageErrorOptions) {
    super(message, { cause: opts.cause });
    this.name = "StorageError";
    this.code = code;
    this.provider = opts.provider;
    this.location = opts.location;
    this.key = opts.key;
  }
}

/** True when `err` is a {@linkcode StorageError}, optionally with `code`. */
export function isStorageError(err: unknown, code?: StorageErrorCode): err is StorageError {
  return err instanceof StorageError && (code === undefined || err.code === code);
}

/** A short one-line description of any thrown value, for messages. */
export function describeCause(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    const msg = err.message || err.name;
    return typeof code === "string" && !msg.includes(code) ? `${code}: ${msg}` : msg;
  }
  return String(err);
}
