/**
 * The long-running processes' (controller, agent) own kubeconfig reader:
 * the current context's cluster and user from a kubeconfig file, or the
 * in-cluster service account. It exists so those processes never load
 * `@kubernetes/client-node` (~85 MiB of resident memory for its generated
 * models and HTTP stack, more than the rest of the controller); the CLI and
 * the tests keep client-node's KubeConfig, which has the same two getters
 * ({@linkcode KubeAccess}), so both work wherever an API server is reached
 * through `kube/http.ts`.
 *
 * Supported, as client-go reads them: `current-context`, clusters with
 * `server`, `certificate-authority(-data)`; users with
 * `client-certificate(-data)` + `client-key(-data)`, `token` or
 * `tokenFile` or an `exec` credential plugin; relative file paths resolve
 * against the kubeconfig's directory. Anything else (legacy auth providers,
 * basic auth, `insecure-skip-tls-verify`) is refused with the field named.
 * @module
 */
import { dirname, resolve } from "node:path";
import { parse } from "yaml";
import type { ExecConfig } from "./exec_credential.ts";

/** A cluster as client-node's KubeConfig names its fields. */
export interface KubeCluster {
  /** Context's cluster name. */
  name: string;
  /** API server URL. */
  server: string;
  /** Base64 PEM CA bundle. */
  caData?: string;
  /** CA bundle file. */
  caFile?: string;
}

/** A user as client-node's KubeConfig names its fields. */
export interface KubeUser {
  /** Context's user name. */
  name: string;
  /** Base64 PEM client certificate. */
  certData?: string;
  /** Client certificate file. */
  certFile?: string;
  /** Base64 PEM client key. */
  keyData?: string;
  /** Client key file. */
  keyFile?: string;
  /** A static bearer token. */
  token?: string;
  /** In-cluster: the token file, read at every request (it rotates). */
  authProvider?: { name?: string; config?: Record<string, string> };
  /** An exec credential plugin (exec_credential.ts). */
  exec?: ExecConfig;
}

/** What lpm needs of a kubeconfig (client-node's KubeConfig has it too). */
export interface KubeAccess {
  /** The current context's cluster. */
  getCurrentCluster(): KubeCluster | null;
  /** The current context's user. */
  getCurrentUser(): KubeUser | null;
}

/** Where a pod's service account is mounted. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** A kubeconfig's current context, read once. */
export class KubeConfigFile implements KubeAccess {
  private constructor(readonly cluster: KubeCluster, readonly user: KubeUser) {}

  /** @inheritdoc */
  getCurrentCluster(): KubeCluster {
    return this.cluster;
  }

  /** @inheritdoc */
  getCurrentUser(): KubeUser {
    return this.user;
  }

  /** The in-cluster service account (KUBERNETES_SERVICE_HOST/PORT, its token and CA). */
  static inCluster(dir = SERVICE_ACCOUNT_DIR): KubeConfigFile {
    const host = Deno.env.get("KUBERNETES_SERVICE_HOST");
    const port = Deno.env.get("KUBERNETES_SERVICE_PORT") ?? "443";
    if (!host) throw new Error("Not in a cluster: KUBERNETES_SERVICE_HOST is not set");
    const h = host.includes(":") ? `[${host}]` : host;
    return new KubeConfigFile(
      { name: "inCluster", server: `https://${h}:${port}`, caFile: `${dir}/ca.crt` },
      { name: "inClusterUser", authProvider: { config: { tokenFile: `${dir}/token` } } },
    );
  }

  /** Reads `path` (YAML or JSON) and takes its current context. */
  static fromFile(path: string): KubeConfigFile {
    let doc: unknown;
    try {
      doc = parse(Deno.readTextFileSync(path));
    } catch (err) {
      throw new Error(`Cannot read kubeconfig ${path}: ${(err as Error).message}`);
    }
    const { cluster, user } = currentContext(doc, dirname(resolve(path)), path);
    return new KubeConfigFile(cluster, user);
  }

  /** `path` if given, else in-cluster when KUBERNETES_SERVICE_HOST is set, else $KUBECONFIG or ~/.kube/config. */
  static load(path?: string): KubeConfigFile {
    if (path) return KubeConfigFile.fromFile(path);
    if (Deno.env.get("KUBERNETES_SERVICE_HOST")) return KubeConfigFile.inCluster();
    const env = Deno.env.get("KUBECONFIG")?.split(":").find(Boolean);
    return KubeConfigFile.fromFile(env ?? `${Deno.env.get("HOME")}/.kube/config`);
  }
}

type Dict = Record<string, unknown>;

function isDict(x: unknown): x is Dict {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** The entry of `list` (a kubeconfig's clusters/users/contexts) called `name`, its `key` field. */
function named(doc: Dict, list: string, name: string, key: string, path: string): Dict {
  const entries = doc[list];
  if (!Array.isArray(entries)) throw new Error(`kubeconfig ${path}: ${list} is not a list`);
  const entry = entries.find((e) => isDict(e) && e.name === name);
  if (!entry || !isDict(entry[key])) {
    throw new Error(`kubeconfig ${path}: no ${list} entry named "${name}" with a ${key}`);
  }
  return entry[key] as Dict;
}

function str(d: Dict, field: string, where: string): string | undefined {
  const v = d[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new Error(`${where}.${field} must be a string`);
  return v;
}

/** The cluster and user of a parsed kubeconfig's current context; files resolve against `dir`. */
export function currentContext(
  doc: unknown,
  dir: string,
  path = "kubeconfig",
): { cluster: KubeCluster; user: KubeUser } {
  if (!isDict(doc)) throw new Error(`kubeconfig ${path}: not a mapping`);
  const ctxName = str(doc, "current-context", "kubeconfig");
  if (!ctxName) throw new Error(`kubeconfig ${path}: current-context is not set`);
  const ctx = named(doc, "contexts", ctxName, "context", path);
  const clusterName = str(ctx, "cluster", `contexts[${ctxName}].context`) ?? "";
  const userName = str(ctx, "user", `contexts[${ctxName}].context`) ?? "";
  const c = named(doc, "clusters", clusterName, "cluster", path);
  const cw = `clusters[${clusterName}].cluster`;
  if (c["insecure-skip-tls-verify"]) {
    throw new Error(`kubeconfig ${path}: ${cw}.insecure-skip-tls-verify is not supported`);
  }
  const file = (d: Dict, f: string, w: string) => {
    const p = str(d, f, w);
    return p === undefined ? undefined : resolve(dir, p);
  };
  const server = str(c, "server", cw);
  if (!server) throw new Error(`kubeconfig ${path}: ${cw}.server is not set`);
  const cluster: KubeCluster = {
    name: clusterName,
    server,
    caData: str(c, "certificate-authority-data", cw),
    caFile: file(c, "certificate-authority", cw),
  };
  const u = userName ? named(doc, "users", userName, "user", path) : {};
  const uw = `users[${userName}].user`;
  for (const unsupported of ["auth-provider", "username", "password"]) {
    if (u[unsupported] !== undefined) {
      throw new Error(
        `kubeconfig ${path}: ${uw}.${unsupported} is not supported by lpm's processes`,
      );
    }
  }
  const tokenFile = file(u, "tokenFile", uw);
  const user: KubeUser = {
    name: userName,
    certData: str(u, "client-certificate-data", uw),
    certFile: file(u, "client-certificate", uw),
    keyData: str(u, "client-key-data", uw),
    keyFile: file(u, "client-key", uw),
    token: str(u, "token", uw),
    ...(isDict(u.exec) ? { exec: u.exec as unknown as ExecConfig } : {}),
    ...(tokenFile ? { authProvider: { config: { tokenFile } } } : {}),
  };
  return { cluster, user };
}
