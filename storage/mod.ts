/**
 * Checkpoint storage: one {@linkcode CheckpointStore} interface, four
 * providers (`local`, `pvc`, `s3`, `minio`) built from a
 * CheckpointStorageClass by {@linkcode createStore}, sha256 integrity and
 * atomic publish on all of them, retention GC and the class validation probe.
 * @module
 */
export type {
  CheckpointStore,
  GetOptions,
  ListOptions,
  ObjectInfo,
  PutOptions,
  SignedUrlOptions,
} from "./backend.ts";
export { describeCause, isStorageError, StorageError } from "./errors.ts";
export { fetchToFile, storeFile } from "./file_io.ts";
export type { StorageErrorCode, StorageErrorOptions } from "./errors.ts";
export {
  checkpointKey,
  checkpointPrefix,
  keyProblem,
  parseCheckpointKey,
  podPrefix,
  RESERVED_PREFIX,
} from "./keys.ts";
export type { CheckpointKeyParts } from "./keys.ts";
export { createLocalStore } from "./local.ts";
export type { LocalStoreOptions } from "./local.ts";
export { createPvcStore } from "./pvc.ts";
export type { PvcStoreOptions } from "./pvc.ts";
export { createS3Store } from "./s3.ts";
export type { S3StoreOptions } from "./s3.ts";
export { createMinioStore } from "./minio.ts";
export type { MinioStoreOptions } from "./minio.ts";
export { credentialsFrom, getProvider, providerNames, registerProvider } from "./providers.ts";
export type { ProviderContext, ProviderFactory } from "./providers.ts";
export { createStore, decodeSecretData, loadStoreForClass } from "./factory.ts";
export type { ClassResource, CreateStoreOptions } from "./factory.ts";
export { collectGarbage, parseGoDuration, selectForRetention } from "./gc.ts";
export type {
  GcOptions,
  GcResult,
  RetentionCandidate,
  RetentionPolicy,
  RetentionSelection,
} from "./gc.ts";
export { defaultClassConflicts, validateStorageClass, validateStore } from "./validate.ts";
export type {
  DefaultClassReport,
  EncryptionValidation,
  ValidateOptions,
  ValidationResult,
} from "./validate.ts";
export {
  DecryptionError,
  decryptStream,
  decryptToFile,
  DEFAULT_CHUNK_SIZE,
  encryptedFileStream,
  encryptedSize,
  encryptFile,
  ENCRYPTION_FORMAT,
  encryptStream,
  importEncryptionKey,
  MAX_CHUNK_SIZE,
  parseHeader,
  plainSizeOf,
} from "./encryption.ts";
export type {
  DecryptOptions,
  EncryptedFile,
  EncryptionHeader,
  EncryptionKey,
  EncryptOptions,
  KeyRing,
} from "./encryption.ts";
export { decodeKeyMaterial, loadKeyRing } from "./encryption_keys.ts";
export { type AesGcmEngine, defaultAesGcmEngine, libcrypto } from "./aes_gcm.ts";
export { validateEncryption } from "./validate.ts";
