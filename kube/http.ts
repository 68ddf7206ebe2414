/**
 * A minimal HTTPS client for the API server from a kubeconfig (or the
 * in-cluster service account), on Deno's own fetch with the kubeconfig's CA
 * and client certificate, token, token file or exec credential plugin. The
 * controller and the agent make every API request through it (rest.ts);
 * the CLI's watches too (aborting a watch made through client-node's HTTP
 * stack crashed the Deno process).
 * @module
 */
import type { KubeAccess } from "./kubeconfig.ts";
import { recordApiRequest } from "./api_requests.ts";
import { execTokenSource } from "./exec_credential.ts";

/** A ready-to-use API server client. */
export interface KubeHttp {
  /** Base URL of the API server (no trailing slash). */
  server: string;
  /** Sends a request to `path` (starting with "/"). */
  request(path: string, init?: RequestInit): Promise<Response>;
  /** Releases the TLS client. */
  close(): void;
}

function pem(data?: string, file?: string): string | undefined {
  if (data) return new TextDecoder().decode(Uint8Array.from(atob(data), (c) => c.charCodeAt(0)));
  if (file) return Deno.readTextFileSync(file);
  return undefined;
}

/** Builds a {@linkcode KubeHttp} from a kubeconfig's current context (lpm's or client-node's). */
export function kubeHttp(kc: KubeAccess): KubeHttp {
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  if (!cluster) {
    throw new Error("Cannot reach the API server: the kubeconfig has no current cluster");
  }
  const ca = pem(cluster.caData, cluster.caFile);
  const cert = pem(user?.certData, user?.certFile);
  const key = pem(user?.keyData, user?.keyFile);
  const client = Deno.createHttpClient({
    caCerts: ca ? [ca] : undefined,
    ...(cert && key ? { cert, key } : {}),
  });
  // In-cluster tokens rotate: read the file for every request.
  const tokenFile = (user?.authProvider?.config as Record<string, string> | undefined)?.tokenFile;
  const exec = user?.exec ? execTokenSource(user.exec) : undefined;
  const token = async () =>
    tokenFile ? Deno.readTextFileSync(tokenFile).trim() : exec ? await exec() : user?.token;
  const server = cluster.server.replace(/\/$/, "");
  return {
    server,
    async request(path, init = {}) {
      const headers = new Headers(init.headers);
      const t = await token();
      if (t) headers.set("authorization", `Bearer ${t}`);
      recordApiRequest(init.method ?? "GET", path);
      return await fetch(`${server}${path}`, { ...init, headers, client });
    },
    close: () => client.close(),
  };
}
