/** Endpoint classification shared by the bucket providers. @module */

/** True for an `http:` endpoint on 127.0.0.0/8, `::1` or `localhost`. */
export function isPlainHttpLoopback(endpoint: string | undefined): boolean {
  if (!endpoint) return false;
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return false;
  }
  const host = url.hostname.replace(/^\[|\]$/g, "");
  return url.protocol === "http:" &&
    (host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host));
}
