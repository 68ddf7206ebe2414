/**
 * The registry of storage providers by name. Each provider turns a
 * CheckpointStorageClass spec and its decoded credential Secret into a
 * {@linkcode CheckpointStore}; the four built-in ones are registered here.
 * @module
 */
import type { CheckpointStore } from "./backend.ts";
import type { CheckpointStorageClassSpec } from "../api/mod.ts";
import { StorageError } from "./errors.ts";
import { createLocalStore } from "./local.ts";
import { createPvcStore } from "./pvc.ts";
import { createS3Store } from "./s3.ts";
import { createMinioStore } from "./minio.ts";

/** What a provider factory receives besides the spec. */
export interface ProviderContext {
  /** The credential Secret's decoded data, if the class references one. */
  secret?: Record<string, string>;
}

/** Builds a store from a class spec. */
export type ProviderFactory = (
  spec: CheckpointStorageClassSpec,
  ctx: ProviderContext,
) => CheckpointStore;

const registry = new Map<string, ProviderFactory>();

/** Registers (or replaces) the factory of provider `name`. */
export function registerProvider(name: string, factory: ProviderFactory): void {
  registry.set(name, factory);
}

/** The factory of provider `name`, or undefined. */
export function getProvider(name: string): ProviderFactory | undefined {
  return registry.get(name);
}

/** Names of all registered providers, sorted. */
export function providerNames(): string[] {
  return [...registry.keys()].sort();
}

function invalid(provider: string, message: string): StorageError {
  return new StorageError("InvalidConfig", message, { provider, location: "(class spec)" });
}

function section<T>(spec: CheckpointStorageClassSpec, name: "local" | "pvc" | "s3" | "minio"): T {
  const v = spec[name];
  if (!v) {
    throw invalid(name, `Storage class with provider "${name}" has no "spec.${name}" section`);
  }
  return v as T;
}

/** Access key and secret key from the decoded Secret, using the class's key names. */
export function credentialsFrom(
  spec: CheckpointStorageClassSpec,
  secret: Record<string, string> | undefined,
): { accessKeyId: string; secretAccessKey: string } | undefined {
  const ref = spec.credentialsSecretRef;
  if (!ref) return undefined;
  const idKey = ref.accessKeyIdKey ?? "accessKeyId";
  const secretKey = ref.secretAccessKeyKey ?? "secretAccessKey";
  const where = `Secret "${ref.namespace}/${ref.name}"`;
  if (!secret) {
    throw invalid(spec.provider, `The class references ${where} but its data was not given`);
  }
  const accessKeyId = secret[idKey];
  const secretAccessKey = secret[secretKey];
  if (!accessKeyId) {
    throw invalid(spec.provider, `${where} has no key "${idKey}" (the access key id)`);
  }
  if (!secretAccessKey) {
    throw invalid(spec.provider, `${where} has no key "${secretKey}" (the secret access key)`);
  }
  return { accessKeyId, secretAccessKey };
}

registerProvider("local", (spec) => createLocalStore(section(spec, "local")));
registerProvider("pvc", (spec) => createPvcStore(section(spec, "pvc")));
registerProvider("s3", (spec, ctx) => {
  const s3 = section<NonNullable<CheckpointStorageClassSpec["s3"]>>(spec, "s3");
  const creds = credentialsFrom(spec, ctx.secret);
  return createS3Store({
    endpoint: s3.endpoint,
    bucket: s3.bucket,
    region: s3.region,
    prefix: s3.prefix,
    forcePathStyle: s3.forcePathStyle,
    caBundle: s3.caBundle,
    insecureSkipTlsVerify: s3.insecureSkipTLSVerify,
    accessKeyId: creds?.accessKeyId,
    secretAccessKey: creds?.secretAccessKey,
  });
});
registerProvider("minio", (spec, ctx) => {
  const m = section<NonNullable<CheckpointStorageClassSpec["minio"]>>(spec, "minio");
  const creds = credentialsFrom(spec, ctx.secret);
  if (!creds) {
    throw invalid("minio", 'Storage class with provider "minio" needs "spec.credentialsSecretRef"');
  }
  return createMinioStore({
    endpoint: m.endpoint,
    bucket: m.bucket,
    region: m.region,
    prefix: m.prefix,
    caBundle: m.caBundle,
    accessKey: creds.accessKeyId,
    secretKey: creds.secretAccessKey,
  });
});
