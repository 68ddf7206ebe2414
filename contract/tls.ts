/**
 * Mutual TLS for the agent: server credentials that demand a client
 * certificate from the configured CA, the identity check on each call (CN or
 * URI SAN in an allow-list), client credentials for the controller, and
 * certificate rotation (re-read the files when they change or on demand).
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";

/** Paths of a certificate, its key and the CA that verifies the peer. */
export interface TlsFiles {
  /** PEM certificate (chain) of this side. */
  cert: string;
  /** PEM private key of this side. */
  key: string;
  /** PEM CA bundle that verifies the peer. */
  ca: string;
}

/** The identity a peer certificate carries. */
export interface PeerIdentity {
  /** Subject common name. */
  commonName?: string;
  /** URI subject alternative names (e.g. `spiffe://lpm/controller`). */
  uris: string[];
  /** DNS subject alternative names. */
  dnsNames: string[];
  /** SHA-256 fingerprint of the certificate (lowercase hex, no colons). */
  sha256?: string;
}

/** Default name the client expects in the agent's serving certificate. */
export const DEFAULT_SERVER_NAME = "lpm-agent";

async function readAll(files: TlsFiles): Promise<{ ca: Buffer; cert: Buffer; key: Buffer }> {
  const read = async (what: string, path: string) => {
    try {
      return Buffer.from(await Deno.readFile(path));
    } catch (err) {
      throw new Error(`Cannot read the TLS ${what} "${path}": ${(err as Error).message}`);
    }
  };
  return {
    ca: await read("CA bundle", files.ca),
    cert: await read("certificate", files.cert),
    key: await read("private key", files.key),
  };
}

/** Server credentials plus a way to rotate them without restarting. */
export interface ServerTls {
  /** Credentials to bind the gRPC server with. */
  credentials: grpc.ServerCredentials;
  /** Re-reads the files; new connections use the new certificates. */
  reload(): Promise<void>;
  /** Reloads whenever a file (or its directory, as with Secret volumes) changes; stops on abort. */
  watch(opts: { signal: AbortSignal; onReload?: (err?: Error) => void }): void;
}

/**
 * Creates mutual-TLS server credentials from files: the client must present a
 * certificate chaining to `files.ca` (checkClientCertAuth).
 */
export async function createServerTls(files: TlsFiles): Promise<ServerTls> {
  const m = await readAll(files);
  const credentials = grpc.ServerCredentials.createSsl(
    m.ca,
    [{ cert_chain: m.cert, private_key: m.key }],
    true,
  );
  const reload = async () => {
    const n = await readAll(files);
    // updateSecureContextOptions is protected in the typings but is how grpc-js
    // itself swaps contexts (it calls setSecureContext on every bound listener);
    // the public alternative is the experimental certificate-provider API.
    (credentials as unknown as {
      updateSecureContextOptions(o: { ca: Buffer; cert: Buffer[]; key: Buffer[] }): void;
    }).updateSecureContextOptions({ ca: n.ca, cert: [n.cert], key: [n.key] });
  };
  return {
    credentials,
    reload,
    watch({ signal, onReload }) {
      watchFiles([files.cert, files.key, files.ca], {
        signal,
        onChange: () => reload().then(() => onReload?.(), (e) => onReload?.(e as Error)),
      });
    },
  };
}

/**
 * Calls `onChange` (debounced) when any of `paths` changes. It watches the
 * parent directories: Kubernetes updates Secret volumes by swapping a
 * symlink, which never touches the files' own inodes.
 */
export function watchFiles(
  paths: string[],
  opts: { signal: AbortSignal; onChange: () => void; debounceMs?: number },
): void {
  const dirs = [...new Set(paths.map((p) => p.replace(/\/[^/]*$/, "") || "/"))];
  const watcher = Deno.watchFs(dirs, { recursive: false });
  let timer: ReturnType<typeof setTimeout> | undefined;
  opts.signal.addEventListener("abort", () => {
    clearTimeout(timer);
    watcher.close();
  }, { once: true });
  (async () => {
    try {
      for await (const _ of watcher) {
        clearTimeout(timer);
        timer = setTimeout(opts.onChange, opts.debounceMs ?? 300);
      }
    } catch {
      // closed
    }
  })();
}

/** Options for {@linkcode createClientTls}. */
export interface ClientTlsOptions {
  /** Name expected in the agent's certificate (default {@linkcode DEFAULT_SERVER_NAME}). */
  serverName?: string;
}

/** Client credentials and the channel options that go with them. */
export interface ClientTls {
  /** Channel credentials with this client's certificate. */
  credentials: grpc.ChannelCredentials;
  /** Channel options (the TLS server name to verify). */
  channelOptions: grpc.ChannelOptions;
}

/**
 * Mutual-TLS client credentials from files. Agents are reached by IP, so the
 * serving certificate is checked against a fixed DNS name instead of the
 * address (`grpc.ssl_target_name_override`).
 */
export async function createClientTls(
  files: TlsFiles,
  opts: ClientTlsOptions = {},
): Promise<ClientTls> {
  const m = await readAll(files);
  return {
    credentials: grpc.credentials.createSsl(m.ca, m.key, m.cert),
    channelOptions: { "grpc.ssl_target_name_override": opts.serverName ?? DEFAULT_SERVER_NAME },
  };
}

/** Parses a Node-style peer certificate (`subject.CN`, `subjectaltname`). */
export function identityOf(
  cert:
    | {
      subject?: Record<string, string | string[]>;
      subjectaltname?: string;
      fingerprint256?: string;
    }
    | undefined,
): PeerIdentity | undefined {
  if (!cert || !cert.subject) return undefined;
  const cn = cert.subject.CN;
  const identity: PeerIdentity = {
    commonName: Array.isArray(cn) ? cn[0] : cn,
    uris: [],
    dnsNames: [],
  };
  const fp = cert.fingerprint256?.replaceAll(":", "").toLowerCase();
  if (fp) identity.sha256 = fp;
  for (const part of (cert.subjectaltname ?? "").split(/,\s*/)) {
    if (part.startsWith("URI:")) identity.uris.push(part.slice(4));
    else if (part.startsWith("DNS:")) identity.dnsNames.push(part.slice(4));
  }
  return identity;
}

/**
 * True when the identity is allowed: an entry `sha256:<hex>` pins one
 * certificate by its fingerprint (the exact identity, whoever else the CA
 * signs), an entry containing "://" matches a URI SAN exactly, any other
 * entry matches the CN exactly.
 */
export function isAllowed(identity: PeerIdentity | undefined, allowed: readonly string[]): boolean {
  if (!identity) return false;
  return allowed.some((a) => {
    if (a.startsWith("sha256:")) {
      return !!identity.sha256 && identity.sha256 === a.slice(7).replaceAll(":", "").toLowerCase();
    }
    return a.includes("://") ? identity.uris.includes(a) : identity.commonName === a;
  });
}

/** The name an agent's serving certificate carries for `node`, from a template with `{node}`. */
export function agentServerName(template: string, node: string): string {
  return template.replaceAll("{node}", node);
}

/** Describes an identity for logs and errors. */
export function describeIdentity(identity: PeerIdentity | undefined): string {
  if (!identity) return "no client certificate";
  const parts = [`CN "${identity.commonName ?? ""}"`];
  if (identity.uris.length) parts.push(`URIs ${identity.uris.map((u) => `"${u}"`).join(", ")}`);
  return parts.join(", ");
}
