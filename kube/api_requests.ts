/**
 * Every request this process sends to the API server, by verb and resource
 * (as client-go's `rest_client_requests_total` counts them), and the one way
 * lpm makes a typed API client ({@linkcode makeApiClient}).
 *
 * Two transports reach the API server: client-node's generated clients
 * (undici, held to HTTP/1.1 by `http1.ts`) for gets, lists and writes, and
 * `http.ts` (Deno's fetch) for watches and the kubelet proxy. Both report
 * here: the generated clients through a middleware that `makeApiClient`
 * installs, `http.ts` in its `request`. Listeners are process-wide, as
 * client-go's metrics are.
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import "./http1.ts";

/** A request as the API server's audit log would name it. */
export interface ApiRequest {
  /** get, list, watch, create, update, patch, delete, deletecollection (else the method). */
  verb: string;
  /** Resource, with its subresource after a slash: `pods`, `podmigrations/status`, `nodes/proxy`. */
  resource: string;
}

const listeners = new Set<(r: ApiRequest) => void>();

/** Calls `listener` for every API request from now on; returns the function that stops it. */
export function onApiRequest(listener: (r: ApiRequest) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Tells the listeners about one request (the transports call this). */
export function recordApiRequest(method: string, url: string): void {
  if (!listeners.size) return;
  const r = apiRequestOf(method, url);
  for (const l of listeners) {
    try {
      l(r);
    } catch {
      // a metric never fails a request
    }
  }
}

/** The verb and resource of a request to `url` (absolute, or a path) with `method`. */
export function apiRequestOf(method: string, url: string): ApiRequest {
  const u = new URL(url, "http://api");
  const segs = u.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  // /api/v1/... or /apis/<group>/<version>/...
  let rest = segs[0] === "api" ? segs.slice(2) : segs[0] === "apis" ? segs.slice(3) : [];
  if (segs[0] !== "api" && segs[0] !== "apis") {
    return { verb: method.toLowerCase(), resource: segs[0] ?? "" }; // /version, /healthz, ...
  }
  if (rest[0] === "watch") rest = rest.slice(1);
  // namespaces/<ns>/<resource>/... (but "namespaces/<ns>" alone is the namespace itself)
  if (rest[0] === "namespaces" && rest.length > 2) rest = rest.slice(2);
  const [resource = "", name, ...sub] = rest;
  const watch = segs.includes("watch") || ["1", "true"].includes(u.searchParams.get("watch") ?? "");
  const m = method.toUpperCase();
  const verb = watch
    ? "watch"
    : m === "GET"
    ? name ? "get" : "list"
    : m === "POST"
    ? "create"
    : m === "PUT"
    ? "update"
    : m === "PATCH"
    ? "patch"
    : m === "DELETE"
    ? name ? "delete" : "deletecollection"
    : m.toLowerCase();
  // Only the subresource: a proxy's path would make a label per URL.
  return { verb, resource: sub.length ? `${resource}/${sub[0]}` : resource };
}

const counting: k8s.Middleware = {
  pre: (ctx) => {
    recordApiRequest(ctx.getHttpMethod(), ctx.getUrl());
    return Promise.resolve(ctx);
  },
  post: (res) => Promise.resolve(res),
};

/**
 * `kc.makeApiClient(Api)` whose requests are counted. (client-node's own
 * also sets its User-Agent, which it does not export; lpm's says "lpm".)
 */
export function makeApiClient<T>(
  kc: k8s.KubeConfig,
  Api: new (config: k8s.Configuration) => T,
): T {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("Cannot make an API client: the kubeconfig has no current cluster");
  return new Api(k8s.createConfiguration({
    baseServer: new k8s.ServerConfiguration(cluster.server, {}),
    authMethods: { default: kc },
    promiseMiddleware: [
      counting,
      {
        pre: (ctx) => {
          ctx.setHeaderParam("User-Agent", "lpm");
          return Promise.resolve(ctx);
        },
        post: (res) => Promise.resolve(res),
      },
    ],
  }));
}
