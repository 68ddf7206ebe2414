/**
 * The agent <-> controller mTLS material as Secrets in the cluster, created
 * and rotated by the controller, never files on the hosts:
 *
 *   lpm-ca               lpm's own CA (cert + key), made once (10 years), in a
 *                        namespace of its own that no agent can read
 *                        (`caNamespace`; `lpm-pki` in config/)
 *   lpm-agent-<node>     each node's agent serving pair, CN lpm-agent, SANs
 *                        lpm-agent.<node> (what the controller checks) and
 *                        lpm-agent; 30 days, renewed when 10 are left
 *
 * The controller's own client pair (CN lpm-controller) is issued in memory
 * at start-up and renewed the same way; it never leaves the controller pod.
 * The agent reads only its own node's Secret ({@linkcode fetchTlsSecret})
 * and re-reads it to pick up a renewal. Certificates are made with the
 * openssl CLI (`pki.ts`), which the controller image carries.
 * @module
 */
import { X509Certificate } from "node:crypto";
import type { KubeHttp } from "../kube/http.ts";
import { Pki } from "./pki.ts";
import type { TlsFiles } from "./tls.ts";

/** Name of the CA Secret. */
export const CA_SECRET = "lpm-ca";
/** Renew a leaf certificate when fewer days than this are left. */
export const RENEW_DAYS = 10;
const LEAF_DAYS = 30;
const CA_DAYS = 3650;

/** The Secret holding node `node`'s agent pair. */
export function agentSecretName(node: string): string {
  return `lpm-agent-${node}`;
}

interface SecretObject {
  metadata?: { name?: string; resourceVersion?: string };
  data?: Record<string, string>;
}

const b64 = (s: string) => btoa(s);
const unb64 = (s: string | undefined) => s === undefined ? undefined : atob(s);

async function getSecret(
  kube: KubeHttp,
  namespace: string,
  name: string,
): Promise<SecretObject | undefined> {
  const res = await kube.request(`/api/v1/namespaces/${namespace}/secrets/${name}`);
  if (res.status === 404) {
    await res.body?.cancel();
    return undefined;
  }
  if (!res.ok) {
    throw new Error(
      `Cannot read Secret "${namespace}/${name}": the API server returned ${res.status} ${await res
        .text()}`,
    );
  }
  return await res.json() as SecretObject;
}

/** Creates or replaces a TLS Secret; a create that loses a race to another replica is fine. */
async function putSecret(
  kube: KubeHttp,
  namespace: string,
  name: string,
  data: Record<string, string>,
  existing?: SecretObject,
): Promise<void> {
  const body = {
    apiVersion: "v1",
    kind: "Secret",
    type: "kubernetes.io/tls",
    metadata: {
      name,
      namespace,
      labels: {
        "app.kubernetes.io/part-of": "lpm",
        "app.kubernetes.io/managed-by": "lpm-controller",
      },
      ...(existing ? { resourceVersion: existing.metadata?.resourceVersion } : {}),
    },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
  };
  const path = `/api/v1/namespaces/${namespace}/secrets`;
  const headers = { "content-type": "application/json" };
  const res = existing
    ? await kube.request(`${path}/${name}`, { method: "PUT", body: JSON.stringify(body), headers })
    : await kube.request(path, { method: "POST", body: JSON.stringify(body), headers });
  if (res.status === 409) {
    await res.body?.cancel();
    return;
  }
  if (!res.ok) {
    throw new Error(
      `Cannot write Secret "${namespace}/${name}": the API server returned ${res.status} ${await res
        .text()}`,
    );
  }
  await res.body?.cancel();
}

/** Days until the PEM certificate expires (negative: expired; undefined: unreadable). */
export function daysLeft(pem: string | undefined, now = Date.now()): number | undefined {
  if (!pem) return undefined;
  try {
    return (new Date(new X509Certificate(pem).validTo).getTime() - now) / 86_400_000;
  } catch {
    return undefined;
  }
}

/** What {@linkcode ensureCertificates} hands the controller. */
export interface ControllerTls {
  /** Its client pair and the CA, as files for the gRPC client. */
  files: TlsFiles;
  /** Secrets created or renewed in this pass. */
  written: string[];
}

/** Options of {@linkcode ensureCertificates}. */
export interface EnsureCertificatesOptions {
  /** Namespace of the agents' Secrets. */
  namespace: string;
  /** Namespace of the CA Secret (default `namespace`): one the agents cannot read. */
  caNamespace?: string;
  /** Nodes that need an agent pair. */
  nodes: string[];
  /** A private directory for the CA key while issuing and the controller's pair. */
  workDir: string;
}

async function ensureCa(kube: KubeHttp, ns: string, dir: string): Promise<Pki> {
  let secret = await getSecret(kube, ns, CA_SECRET);
  if (!secret?.data?.["tls.key"]) {
    const made = await Pki.create(`${dir}/new-ca`, "lpm-ca", CA_DAYS);
    await putSecret(kube, ns, CA_SECRET, {
      "tls.crt": await Deno.readTextFile(made.ca.cert),
      "tls.key": await Deno.readTextFile(made.ca.key),
    });
    // Read back: another replica may have won the create.
    secret = await getSecret(kube, ns, CA_SECRET);
    await Deno.remove(`${dir}/new-ca`, { recursive: true });
  }
  await Deno.mkdir(`${dir}/ca`, { recursive: true, mode: 0o700 });
  await Deno.writeTextFile(`${dir}/ca/ca.crt`, unb64(secret!.data!["tls.crt"])!);
  await Deno.writeTextFile(`${dir}/ca/ca.key`, unb64(secret!.data!["tls.key"])!, { mode: 0o600 });
  return await Pki.open(`${dir}/ca`);
}

/**
 * Makes sure the CA Secret and every node's agent Secret exist and are not
 * near expiry, and issues the controller's client pair when it is missing
 * or near expiry. Safe to run from several replicas at once.
 */
export async function ensureCertificates(
  kube: KubeHttp,
  opts: EnsureCertificatesOptions,
): Promise<ControllerTls> {
  const ns = opts.namespace;
  await Deno.mkdir(opts.workDir, { recursive: true, mode: 0o700 });
  const pki = await ensureCa(kube, opts.caNamespace ?? ns, opts.workDir);
  const caPem = await Deno.readTextFile(pki.ca.cert);
  const written: string[] = [];
  for (const node of opts.nodes) {
    const name = agentSecretName(node);
    const existing = await getSecret(kube, ns, name);
    const left = daysLeft(unb64(existing?.data?.["tls.crt"]));
    if (left !== undefined && left > RENEW_DAYS && unb64(existing?.data?.["ca.crt"]) === caPem) {
      continue;
    }
    const pair = await pki.issue(name, {
      cn: "lpm-agent",
      sans: [`lpm-agent.${node}`, "lpm-agent"],
      usage: ["server"],
      days: LEAF_DAYS,
    });
    await putSecret(kube, ns, name, {
      "tls.crt": await Deno.readTextFile(pair.cert),
      "tls.key": await Deno.readTextFile(pair.key),
      "ca.crt": caPem,
    }, existing);
    await Deno.remove(pair.key);
    written.push(name);
  }
  const files: TlsFiles = {
    cert: `${opts.workDir}/ca/lpm-controller.crt`,
    key: `${opts.workDir}/ca/lpm-controller.key`,
    ca: pki.ca.cert,
  };
  const current = await Deno.readTextFile(files.cert).catch(() => undefined);
  const issuedBy = await Deno.readTextFile(`${files.cert}.issuer`).catch(() => undefined);
  if ((daysLeft(current) ?? -1) <= RENEW_DAYS || issuedBy !== caPem) {
    await pki.issue("lpm-controller", { cn: "lpm-controller", usage: ["client"], days: LEAF_DAYS });
    await Deno.writeTextFile(`${files.cert}.issuer`, caPem);
  }
  // The CA key is needed only while issuing.
  await Deno.remove(pki.ca.key);
  return { files, written };
}

/** Options of {@linkcode fetchTlsSecret}. */
export interface FetchTlsSecretOptions {
  /** Directory to write `tls.crt`, `tls.key`, `ca.crt` into. */
  dir: string;
}

/**
 * Reads the TLS Secret `namespace/name` and writes its pair and CA into
 * `opts.dir`; returns the files and the Secret's resourceVersion, or
 * undefined while the Secret does not exist (yet).
 */
export async function fetchTlsSecret(
  kube: KubeHttp,
  namespace: string,
  name: string,
  opts: FetchTlsSecretOptions,
): Promise<{ files: TlsFiles; version: string } | undefined> {
  const secret = await getSecret(kube, namespace, name);
  const d = secret?.data;
  if (!d?.["tls.crt"] || !d["tls.key"] || !d["ca.crt"]) return undefined;
  await Deno.mkdir(opts.dir, { recursive: true, mode: 0o700 });
  const files: TlsFiles = {
    cert: `${opts.dir}/tls.crt`,
    key: `${opts.dir}/tls.key`,
    ca: `${opts.dir}/ca.crt`,
  };
  // Each file replaced atomically: a reload never reads half a key.
  for (
    const [path, key] of [[files.cert, "tls.crt"], [files.key, "tls.key"], [files.ca, "ca.crt"]]
  ) {
    const tmp = `${path}.tmp`;
    await Deno.writeTextFile(tmp, unb64(d[key])!, { mode: 0o600 });
    await Deno.rename(tmp, path);
  }
  return { files, version: secret!.metadata?.resourceVersion ?? "" };
}

/** Options of {@linkcode ensureServingSecret}. */
export interface EnsureServingSecretOptions {
  /** Namespace of the Secret. */
  namespace: string;
  /** Namespace of lpm's CA Secret (default `namespace`). */
  caNamespace?: string;
  /** The Secret's name. */
  name: string;
  /** DNS names and IPs the certificate must carry. */
  sans: string[];
  /** A private directory for the CA key while issuing. */
  workDir: string;
}

/** A serving pair and the CA that signed it, as PEM. */
export interface ServingPem {
  cert: string;
  key: string;
  ca: string;
}

function hasSans(pem: string | undefined, sans: string[]): boolean {
  if (!pem) return false;
  try {
    const alt = new X509Certificate(pem).subjectAltName ?? "";
    return sans.every((s) => alt.includes(/^[\d.]+$|:/.test(s) ? `IP Address:${s}` : `DNS:${s}`));
  } catch {
    return false;
  }
}

/**
 * Makes sure the Secret `name` holds a serving pair from lpm's CA (the CA
 * Secret is created when missing) for `sans`, not near expiry; renews it
 * otherwise. Returns the PEMs (the controller's webhook serves them) and
 * whether they were issued now.
 */
export async function ensureServingSecret(
  kube: KubeHttp,
  opts: EnsureServingSecretOptions,
): Promise<ServingPem & { issued: boolean }> {
  const ns = opts.namespace;
  const existing = await getSecret(kube, ns, opts.name);
  const current = {
    cert: unb64(existing?.data?.["tls.crt"]),
    key: unb64(existing?.data?.["tls.key"]),
    ca: unb64(existing?.data?.["ca.crt"]),
  };
  const caNs = opts.caNamespace ?? ns;
  const caSecret = await getSecret(kube, caNs, CA_SECRET);
  const caPem = unb64(caSecret?.data?.["tls.crt"]);
  if (
    current.cert && current.key && current.ca && current.ca === caPem &&
    (daysLeft(current.cert) ?? -1) > RENEW_DAYS && hasSans(current.cert, opts.sans)
  ) {
    return { cert: current.cert, key: current.key, ca: current.ca, issued: false };
  }
  await Deno.mkdir(opts.workDir, { recursive: true, mode: 0o700 });
  const pki = await ensureCa(kube, caNs, opts.workDir);
  try {
    const pair = await pki.issue(opts.name, {
      cn: opts.sans[0] ?? opts.name,
      sans: opts.sans,
      usage: ["server"],
      days: LEAF_DAYS,
    });
    const pem = {
      cert: await Deno.readTextFile(pair.cert),
      key: await Deno.readTextFile(pair.key),
      ca: await Deno.readTextFile(pki.ca.cert),
    };
    await Deno.remove(pair.key);
    await putSecret(kube, ns, opts.name, {
      "tls.crt": pem.cert,
      "tls.key": pem.key,
      "ca.crt": pem.ca,
    }, existing);
    return { ...pem, issued: true };
  } finally {
    // The CA key is needed only while issuing.
    await Deno.remove(pki.ca.key).catch(() => {});
  }
}
