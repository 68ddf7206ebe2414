/**
 * Every request this process sends to the API server, by verb and resource
 * (as client-go's `rest_client_requests_total` counts them).
 *
 * Two transports reach the API server: `http.ts` (Deno's fetch; every
 * request of the controller and the agent) and, in the CLI and the tests,
 * client-node's generated clients made by `api_client.ts`. Both report
 * here: `http.ts` in its `request`, the generated clients through a
 * middleware. Listeners are process-wide, as client-go's metrics are.
 * @module
 */

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
