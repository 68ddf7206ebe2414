/**
 * A real OCI registry (Debian's docker-registry, distribution 2.8) on
 * loopback. By default anyone may pull and push; with `auth` it asks for
 * Basic credentials checked against an htpasswd file (bcrypt, the only hash
 * distribution accepts), the way a private registry does.
 * @module
 */
import { type ManagedProcess, startProcess } from "./_process.ts";
import { freePort, waitFor } from "./_wait.ts";
import { tool } from "./tools.ts";

/** Connection details of the registry. */
export interface RegistryInfo {
  /** host:port, e.g. 127.0.0.1:5000 (plain HTTP). */
  host: string;
  /** Storage directory. */
  dataDir: string;
  /** The one user the registry accepts, when it was started with `auth`. */
  auth?: { username: string; password: string };
}

/** Options of {@linkcode startRegistry}. */
export interface RegistryOptions {
  /** Directory of the registry's log. */
  logDir: string;
  /** Port to listen on (default: a free one). */
  port?: number;
  /** Require these Basic credentials for every request (default: no auth). */
  auth?: { username: string; password: string };
  /** Log file name (default "registry.log"). */
  logName?: string;
}

/** Starts a registry storing its blobs in `dir`. */
export async function startRegistry(
  dir: string,
  opts: RegistryOptions,
): Promise<{ info: RegistryInfo; process: ManagedProcess }> {
  const port = opts.port ?? freePort();
  const dataDir = `${dir}/data`;
  await Deno.mkdir(dataDir, { recursive: true });
  const config = `${dir}/config.yml`;
  const auth = opts.auth ? await htpasswdAuth(dir, opts.auth) : [];
  await Deno.writeTextFile(
    config,
    [
      "version: 0.1",
      "log:",
      "  level: warn",
      "  accesslog:",
      "    disabled: true",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${dataDir}`,
      "  delete:",
      "    enabled: true",
      "http:",
      `  addr: 127.0.0.1:${port}`,
      ...auth,
      "",
    ].join("\n"),
  );
  const proc = startProcess("registry", [tool("docker-registry"), "serve", config], {
    logPath: `${opts.logDir}/${opts.logName ?? "registry.log"}`,
  });
  const host = `127.0.0.1:${port}`;
  const headers: Record<string, string> = opts.auth
    ? { authorization: `Basic ${btoa(`${opts.auth.username}:${opts.auth.password}`)}` }
    : {};
  try {
    await waitFor(async () => {
      const r = await fetch(`http://${host}/v2/`, { headers });
      await r.body?.cancel();
      return r.status === 200;
    }, { what: "registry /v2/", timeoutMs: 30_000, exited: proc.exited });
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return { info: { host, dataDir, ...(opts.auth ? { auth: opts.auth } : {}) }, process: proc };
}

/** Writes `dir`/htpasswd for `user` and returns the config lines that use it. */
async function htpasswdAuth(
  dir: string,
  user: { username: string; password: string },
): Promise<string[]> {
  if (!/^[A-Za-z0-9._-]+$/.test(user.username)) {
    throw new Error(`Registry user name "${user.username}" must be letters, digits, ".", "_", "-"`);
  }
  const file = `${dir}/htpasswd`;
  await Deno.writeTextFile(file, `${user.username}:${bcrypt(user.password)}\n`, { mode: 0o600 });
  return ["auth:", "  htpasswd:", "    realm: lpm-registry", `    path: ${file}`];
}

/**
 * bcrypt of `password` through the system's libcrypt (libxcrypt, which
 * every Debian system has): no bcrypt in Deno's std or WebCrypto, and
 * distribution's htpasswd accepts no other hash.
 */
function bcrypt(password: string): string {
  const lib = Deno.dlopen("libcrypt.so.1", {
    crypt_gensalt: { parameters: ["buffer", "u64", "pointer", "i32"], result: "pointer" },
    crypt: { parameters: ["buffer", "buffer"], result: "pointer" },
  });
  const cString = (s: string) => new TextEncoder().encode(`${s}\0`);
  try {
    // No random bytes given: libcrypt draws the salt from the OS. Cost 5, not
    // the usual 10+: the registry checks the hash on every request of a push.
    const salt = lib.symbols.crypt_gensalt(cString("$2b$"), 5n, null, 0);
    if (!salt) throw new Error("libcrypt has no bcrypt salt ($2b$)");
    const saltText = Deno.UnsafePointerView.getCString(salt);
    const hash = lib.symbols.crypt(cString(password), cString(saltText));
    const text = hash ? Deno.UnsafePointerView.getCString(hash) : "";
    if (!text.startsWith("$2b$")) {
      throw new Error(`libcrypt did not bcrypt (got "${text.slice(0, 4)}")`);
    }
    return text;
  } finally {
    lib.close();
  }
}
