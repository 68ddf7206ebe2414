/**
 * Node-specific agent settings for a DaemonSet, whose pods all share one
 * spec:
 *
 * - `--node-flags-dir <dir>`: a directory (a ConfigMap keyed by node name)
 *   whose file `<node>` holds flags, one per line, that replace the same
 *   flags of the command line on that node (heterogeneous nodes: another
 *   kubelet root dir, runtime socket or CRIU log dir).
 * - `--kubelet-url https://$(HOST_IP):{port}`: `{port}` is the node's
 *   kubelet port as the Node object reports it
 *   (`status.daemonEndpoints.kubeletEndpoint.Port`), so non-default kubelet
 *   ports need no per-node configuration.
 * @module
 */
import type { KubeHttp } from "../kube/http.ts";

/** The flag's long name of `--name=value` or `--name`. */
function flagName(arg: string): string | undefined {
  return arg.startsWith("--") ? arg.slice(2).split("=")[0] : undefined;
}

/**
 * `args` with the flags of `lines` (one `--name=value` per line; blank lines
 * and `#` comments skipped) replacing every occurrence of the same flags.
 * Flags on the command line must use the `--name=value` form.
 */
export function overrideFlags(args: string[], lines: string): string[] {
  const extra = lines.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  for (const e of extra) {
    if (!/^--[a-z0-9-]+(=.*)?$/.test(e)) {
      throw new Error(`Node flag line "${e}" is invalid: expected "--name=value"`);
    }
  }
  const names = new Set(extra.map(flagName));
  return [...args.filter((a) => !names.has(flagName(a))), ...extra];
}

/** The node name as the command line or `NODE_NAME` gives it. */
function nodeNameOf(args: string[]): string | undefined {
  for (const [i, a] of args.entries()) {
    if (a.startsWith("--node-name=")) return a.slice("--node-name=".length);
    if (a === "--node-name") return args[i + 1];
  }
  return Deno.env.get("NODE_NAME");
}

/** Applies `--node-flags-dir` (removed from the result) when given; else returns `args`. */
export async function applyNodeFlags(args: string[]): Promise<string[]> {
  const at = args.findIndex((a) => a === "--node-flags-dir" || a.startsWith("--node-flags-dir="));
  if (at < 0) return args;
  const dir = args[at].includes("=") ? args[at].split("=").slice(1).join("=") : args[at + 1];
  const rest = args.filter((_, i) => i !== at && !(i === at + 1 && !args[at].includes("=")));
  const node = nodeNameOf(rest);
  if (!node || !dir) return rest;
  const text = await Deno.readTextFile(`${dir}/${node}`).catch((err) => {
    if (err instanceof Deno.errors.NotFound) return "";
    throw err;
  });
  return overrideFlags(rest, text);
}

/** Replaces `{port}` in a kubelet URL with the node's kubelet port from its Node object. */
export async function resolveKubeletUrl(
  url: string,
  node: string,
  kube: KubeHttp | undefined,
): Promise<string> {
  if (!url.includes("{port}")) return url;
  if (!kube) throw new Error(`--kubelet-url "${url}" has {port}, which needs cluster access`);
  const res = await kube.request(`/api/v1/nodes/${encodeURIComponent(node)}`);
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(
      `Cannot read node "${node}" for its kubelet port: the API server returned ${res.status}`,
    );
  }
  const n = await res.json() as {
    status?: { daemonEndpoints?: { kubeletEndpoint?: { Port?: number } } };
  };
  const port = n.status?.daemonEndpoints?.kubeletEndpoint?.Port;
  if (!port) throw new Error(`Node "${node}" reports no kubelet port (status.daemonEndpoints)`);
  return url.replace("{port}", String(port));
}
