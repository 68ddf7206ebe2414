/**
 * Resolving a request's storage class into a store and registry settings: by
 * reading the CheckpointStorageClass and its Secrets from the cluster with
 * the agent's own credentials (RBAC limits those Secrets to the `lpm-system`
 * namespace). A spec and credentials passed inline in the request are
 * refused unless the agent was started to accept them (`--allow-inline-storage`,
 * for Docker hosts without a cluster): otherwise any allowed client could send
 * any container's memory to an endpoint of its choosing. A plain-HTTP
 * registry (`insecure`) is accepted only on a loopback address.
 * @module
 */
import { API_VERSION, type CheckpointStorageClassSpec } from "../api/mod.ts";
import { createStore, decodeSecretData, type KeyRing, loadKeyRing } from "../storage/mod.ts";
import type { KubeHttp } from "../kube/config.ts";
import type { StorageClassRefMsg } from "../contract/proto.ts";
import type { RegistrySettings, ResolvedClass } from "./pipeline.ts";
import { insecureRegistryRefusal } from "../oci/mod.ts";

/** Options for {@linkcode resolveStorageClass}. */
export interface ResolveClassOptions {
  /** API server client; needed when the request names a class without its spec. */
  kube?: KubeHttp;
  /** Accept a spec and credentials passed inline in the request (default: refused). */
  allowInline?: boolean;
}

async function getJson<T>(kube: KubeHttp, path: string, what: string): Promise<T> {
  const res = await kube.request(path);
  const body = await res.text();
  if (!res.ok) {
    let message = body.trim();
    try {
      // A Kubernetes Status: its message says it ("secrets \"x\" not found").
      message = (JSON.parse(body) as { message?: string }).message ?? message;
    } catch { /* not JSON: the body as it came */ }
    throw new Error(`Cannot read ${what}: the API server returned ${res.status}: ${message}`);
  }
  return JSON.parse(body) as T;
}

/** Reads the Secret `ref`; an error names the class field that points at it. */
async function readSecret(
  kube: KubeHttp,
  ref: { name: string; namespace: string },
  field: string,
): Promise<Record<string, string>> {
  const s = await getJson<{ data?: Record<string, string> }>(
    kube,
    `/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/secrets/${
      encodeURIComponent(ref.name)
    }`,
    `Secret "${ref.namespace}/${ref.name}" (${field})`,
  );
  return decodeSecretData(s);
}

/**
 * Registry credentials from Secret data: `username`/`password`, or a
 * `.dockerconfigjson` entry for the repository's host.
 */
export function registryCredentials(
  repository: string,
  data: Record<string, string> | undefined,
): Record<string, string> | undefined {
  if (!data || Object.keys(data).length === 0) return undefined;
  if (data.username) return { username: data.username, password: data.password ?? "" };
  const cfg = data[".dockerconfigjson"];
  if (!cfg) return undefined;
  const host = repository.split("/")[0];
  const auths = (JSON.parse(cfg) as { auths?: Record<string, Record<string, string>> }).auths ?? {};
  const entry = auths[host] ?? auths[`https://${host}`] ?? auths[`http://${host}`];
  if (!entry) return undefined;
  if (entry.username) return { username: entry.username, password: entry.password ?? "" };
  if (entry.auth) {
    const [username, ...rest] = atob(entry.auth).split(":");
    return { username, password: rest.join(":") };
  }
  return undefined;
}

/** Builds the class a request names. */
export async function resolveStorageClass(
  ref: StorageClassRefMsg,
  opts: ResolveClassOptions = {},
): Promise<ResolvedClass> {
  const inline = !!ref.specJson || Object.keys(ref.credentials ?? {}).length > 0 ||
    Object.keys(ref.registryCredentials ?? {}).length > 0;
  if (inline && !opts.allowInline) {
    throw new Error(
      `Storage class "${ref.name}": the request carries an inline spec or credentials, which ` +
        "this agent refuses (it reads classes and their Secrets from the cluster; " +
        "--allow-inline-storage is for Docker hosts without a cluster)",
    );
  }
  let spec: CheckpointStorageClassSpec;
  let credentials = ref.credentials && Object.keys(ref.credentials).length
    ? ref.credentials
    : undefined;
  let keyData: Record<string, string> | undefined;
  let regData = ref.registryCredentials && Object.keys(ref.registryCredentials).length
    ? ref.registryCredentials
    : undefined;
  if (ref.specJson) {
    try {
      spec = JSON.parse(ref.specJson) as CheckpointStorageClassSpec;
    } catch (err) {
      throw new Error(
        `Storage class "${ref.name}" spec is invalid JSON: ${(err as Error).message}`,
      );
    }
  } else {
    if (!opts.kube) {
      throw new Error(
        `Cannot resolve storage class "${ref.name}": the request has no spec and the agent ` +
          "has no cluster access (--kubeconfig or in-cluster)",
      );
    }
    const cls = await getJson<{ spec: CheckpointStorageClassSpec }>(
      opts.kube,
      `/apis/${API_VERSION}/checkpointstorageclasses/${encodeURIComponent(ref.name)}`,
      `CheckpointStorageClass "${ref.name}"`,
    );
    spec = cls.spec;
    if (!credentials && spec.credentialsSecretRef) {
      credentials = await readSecret(opts.kube, spec.credentialsSecretRef, "credentialsSecretRef");
    }
    if (!regData && spec.registry?.credentialsSecretRef) {
      regData = await readSecret(
        opts.kube,
        spec.registry.credentialsSecretRef,
        "registry.credentialsSecretRef",
      );
    }
    if (spec.encryption) {
      keyData = await readSecret(opts.kube, spec.encryption.secretRef, "encryption.secretRef");
    }
  }
  const refusal = spec.registry?.repository
    ? insecureRegistryRefusal(spec.registry.repository, spec.registry.insecure)
    : undefined;
  if (refusal) throw new Error(`Storage class "${ref.name}": ${refusal}`);
  const store = createStore(spec as Parameters<typeof createStore>[0], { secret: credentials });
  const registry: RegistrySettings | undefined = spec.registry?.repository
    ? {
      repository: spec.registry.repository,
      insecure: spec.registry.insecure,
      caBundle: spec.registry.caBundle,
      credentials: registryCredentials(spec.registry.repository, regData),
    }
    : undefined;
  let keys: KeyRing | undefined;
  if (spec.encryption) {
    if (!keyData) {
      store.close?.();
      throw new Error(
        `Storage class "${ref.name}": spec.encryption needs its Secret, which an inline ` +
          "request does not carry",
      );
    }
    try {
      keys = await loadKeyRing(spec.encryption, keyData);
    } catch (err) {
      store.close?.();
      throw new Error(`Storage class "${ref.name}": ${(err as Error).message}`);
    }
  }
  return { name: ref.name, store, registry, keys };
}
