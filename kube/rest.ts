/**
 * JSON requests to the API server over `kube/http.ts` (Deno's fetch), for
 * the controller and the agent, which do not load `@kubernetes/client-node`
 * (see kubeconfig.ts). A failed request throws an {@linkcode ApiError} with
 * the same `code` and `body` client-node's ApiException has, so
 * `apiStatus` / `apiMessage` read both.
 * @module
 */
import { type KubeHttp, kubeHttp } from "./http.ts";
import type { KubeAccess } from "./kubeconfig.ts";

/** An API server answer other than 2xx. */
export class ApiError extends Error {
  /** Creates the error for `method path` answered with `code` and `body`. */
  constructor(readonly code: number, readonly body: string, method: string, path: string) {
    super(`${method} ${path}: HTTP ${code}: ${messageOf(body)}`);
    this.name = "ApiError";
  }
}

function messageOf(body: string): string {
  try {
    const m = JSON.parse(body)?.message;
    if (typeof m === "string") return m;
  } catch {
    // not a Status
  }
  return body.slice(0, 200);
}

/** Patch content types, by the name client-go gives them. */
export const PATCH = {
  merge: "application/merge-patch+json",
  strategic: "application/strategic-merge-patch+json",
  json: "application/json-patch+json",
} as const;

/** A patch content type. */
export type PatchType = keyof typeof PATCH;

/** At most this many bytes of an answer are read (a list of every pod of a big cluster fits). */
export const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;

/** Query parameters; undefined values are left out. */
export type Query = Record<string, string | number | boolean | undefined>;

/** A path with its query string. */
export function withQuery(path: string, query: Query = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** JSON over one API server connection. */
export class KubeRest {
  readonly http: KubeHttp;

  /** Connects to the current context of `kc` (lpm's KubeConfigFile or client-node's KubeConfig). */
  constructor(kc: KubeAccess) {
    this.http = kubeHttp(kc);
  }

  /** GET `path`. */
  get<T>(path: string, query?: Query): Promise<T> {
    return this.send<T>("GET", withQuery(path, query));
  }

  /** POST `body` to `path`. */
  create<T>(path: string, body: unknown, query?: Query): Promise<T> {
    return this.send<T>("POST", withQuery(path, query), body);
  }

  /** PUT `body` to `path`. */
  replace<T>(path: string, body: unknown): Promise<T> {
    return this.send<T>("PUT", path, body);
  }

  /** PATCH `path` with `body` as `type` (merge by default). */
  patch<T>(path: string, body: unknown, type: PatchType = "merge"): Promise<T> {
    return this.send<T>("PATCH", path, body, PATCH[type]);
  }

  /** DELETE `path`, with delete options in `body` (gracePeriodSeconds, preconditions...). */
  delete<T>(path: string, body?: unknown): Promise<T> {
    return this.send<T>("DELETE", path, body);
  }

  /** Sends one request; parses the JSON answer, or throws an {@linkcode ApiError}. */
  async send<T>(
    method: string,
    path: string,
    body?: unknown,
    contentType = "application/json",
  ): Promise<T> {
    const res = await this.http.request(path, {
      method,
      headers: {
        accept: "application/json",
        "user-agent": "lpm",
        ...(body === undefined ? {} : { "content-type": contentType }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await boundedText(res, MAX_RESPONSE_BYTES);
    if (!res.ok) throw new ApiError(res.status, text, method, path);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new Error(`${method} ${path}: the API server answered ${res.status} with no JSON`);
    }
  }

  /** Releases the connection. */
  close(): void {
    this.http.close();
  }
}

/** The body of `res` as text, refusing more than `max` bytes. */
async function boundedText(res: Response, max: number): Promise<string> {
  const declared = Number(res.headers.get("content-length") ?? "0");
  if (declared > max) {
    await res.body?.cancel();
    throw new Error(`API answer of ${declared} bytes is over the ${max}-byte limit`);
  }
  if (!res.body) return "";
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const c of res.body) {
    n += c.byteLength;
    if (n > max) throw new Error(`API answer is over the ${max}-byte limit`);
    chunks.push(c);
  }
  const all = new Uint8Array(n);
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.byteLength;
  }
  return new TextDecoder().decode(all);
}
