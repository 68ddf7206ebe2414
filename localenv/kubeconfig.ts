/** Kubeconfig files for the local control plane. @module */

/** One user entry of a kubeconfig. */
export interface KubeconfigUser {
  /** Client certificate path. */
  cert?: string;
  /** Client key path. */
  key?: string;
  /** Bearer token. */
  token?: string;
}

/** Writes a kubeconfig with one cluster, user and context (JSON, a subset of YAML). */
export async function writeKubeconfig(
  path: string,
  opts: { server: string; caFile: string; user: KubeconfigUser; name?: string },
): Promise<void> {
  const name = opts.name ?? "lpm-local";
  const user: Record<string, string> = {};
  if (opts.user.cert) user["client-certificate"] = opts.user.cert;
  if (opts.user.key) user["client-key"] = opts.user.key;
  if (opts.user.token) user.token = opts.user.token;
  const doc = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name, cluster: { server: opts.server, "certificate-authority": opts.caFile } }],
    users: [{ name, user }],
    contexts: [{ name, context: { cluster: name, user: name, namespace: "default" } }],
    "current-context": name,
  };
  await Deno.writeTextFile(path, JSON.stringify(doc, null, 2) + "\n", { mode: 0o600 });
}
