/**
 * Bearer tokens from a kubeconfig's exec credential plugin
 * (`users[].user.exec`: the `aws eks get-token`, `gke-gcloud-auth-plugin`,
 * `kubelogin` kind), as client-go runs them: the command with its args and
 * env, `KUBERNETES_EXEC_INFO` describing the request, stdout an
 * `ExecCredential` whose `status.token` is cached until its
 * `expirationTimestamp`. Plugins that answer with a client certificate are
 * refused with a message saying so.
 * @module
 */

/** A kubeconfig's `user.exec`. */
export interface ExecConfig {
  /** The plugin's command. */
  command: string;
  /** Its arguments. */
  args?: string[];
  /** Extra environment variables. */
  env?: { name: string; value: string }[] | null;
  /** client.authentication.k8s.io version the plugin speaks. */
  apiVersion?: string;
}

/** At most this much of a plugin's output is read. */
const MAX_OUTPUT = 1024 * 1024;

/** The token of an ExecCredential printed by a plugin, and until when it holds (ms, or Infinity). */
export function parseExecCredential(stdout: string): { token: string; expiresMs: number } {
  if (stdout.length > MAX_OUTPUT) throw new Error("exec credential plugin printed over 1 MiB");
  let cred: { kind?: string; status?: Record<string, unknown> };
  try {
    cred = JSON.parse(stdout);
  } catch {
    throw new Error("exec credential plugin did not print an ExecCredential (not JSON)");
  }
  const status = cred?.status;
  if (cred?.kind !== "ExecCredential" || typeof status !== "object" || !status) {
    throw new Error("exec credential plugin did not print an ExecCredential with a status");
  }
  if (typeof status.token !== "string" || !status.token) {
    const cert = status.clientCertificateData ? " (it gave a client certificate)" : "";
    throw new Error(`exec credential plugin gave no status.token${cert}: lpm needs a token`);
  }
  const exp = typeof status.expirationTimestamp === "string"
    ? Date.parse(status.expirationTimestamp)
    : NaN;
  return { token: status.token, expiresMs: Number.isFinite(exp) ? exp : Infinity };
}

/** Returns a function giving a fresh token from the plugin, re-running it a minute before expiry. */
export function execTokenSource(exec: ExecConfig): () => Promise<string> {
  if (!exec?.command || typeof exec.command !== "string") {
    throw new Error("kubeconfig user.exec.command is not set");
  }
  let cached: { token: string; expiresMs: number } | undefined;
  let pending: Promise<{ token: string; expiresMs: number }> | undefined;
  const run = async () => {
    const env: Record<string, string> = {
      KUBERNETES_EXEC_INFO: JSON.stringify({
        apiVersion: exec.apiVersion ?? "client.authentication.k8s.io/v1",
        kind: "ExecCredential",
        spec: { interactive: false },
      }),
    };
    for (const e of exec.env ?? []) env[e.name] = e.value;
    const out = await new Deno.Command(exec.command, {
      args: exec.args ?? [],
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      const err = new TextDecoder().decode(out.stderr).trim().slice(0, 500);
      throw new Error(`exec credential plugin ${exec.command} failed (${out.code}): ${err}`);
    }
    return parseExecCredential(new TextDecoder().decode(out.stdout));
  };
  return async () => {
    if (cached && cached.expiresMs - 60_000 > Date.now()) return cached.token;
    pending ??= run().finally(() => (pending = undefined));
    cached = await pending;
    return cached.token;
  };
}
