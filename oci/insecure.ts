/**
 * Plain-HTTP registries: a checkpoint image is a memory dump, so a registry
 * marked `insecure` is accepted only on a loopback address (a node-local or
 * development registry). Used by the agent before it pushes or pulls and by
 * the controllers when they validate a class.
 * @module
 */

/** True for a `host[:port]` on a loopback address. */
export function loopbackHost(hostPort: string): boolean {
  // "[::1]:5000", a bare IPv6 address (more than one colon), or "host:port".
  const host = hostPort.startsWith("[")
    ? hostPort.slice(1, hostPort.indexOf("]"))
    : hostPort.split(":").length > 2
    ? hostPort
    : hostPort.replace(/:\d+$/, "");
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Why a registry marked `insecure` is refused, or undefined when it is acceptable. */
export function insecureRegistryRefusal(
  repository: string,
  insecure?: boolean,
): string | undefined {
  const host = repository.split("/")[0];
  if (!insecure || loopbackHost(host)) return undefined;
  return `Registry "${host}" is marked insecure (plain HTTP) but is not on a loopback address: ` +
    "checkpoints are memory dumps, use TLS (registry.caBundle for a private CA)";
}
