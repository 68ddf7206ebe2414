/**
 * Registry credentials from a Docker config (`{"auths": {host: {auth} |
 * {username, password}}}`, the `.dockerconfigjson` of a Kubernetes Secret).
 * @module
 */

/** Credentials for one registry. */
export interface RegistryCredentials {
  /** User name. */
  username?: string;
  /** Password. */
  password?: string;
  /** A registry identity token (OAuth2 refresh token), when the config has one. */
  identityToken?: string;
}

/** A Docker config document. */
export interface DockerConfig {
  /** Credentials by registry host (or URL). */
  auths?: Record<string, {
    auth?: string;
    username?: string;
    password?: string;
    identitytoken?: string;
  }>;
}

function hostOf(key: string): string {
  return key.replace(/^https?:\/\//, "").replace(/\/.*$/, "");
}

/** The credentials for `host` in a Docker config (JSON text or parsed). */
export function credentialsFor(
  config: DockerConfig | string,
  host: string,
): RegistryCredentials | undefined {
  let doc: DockerConfig;
  try {
    doc = typeof config === "string" ? JSON.parse(config) as DockerConfig : config;
  } catch (err) {
    throw new Error(`Invalid Docker config JSON: ${(err as Error).message}`);
  }
  for (const [key, v] of Object.entries(doc.auths ?? {})) {
    if (hostOf(key) !== host) continue;
    if (v.auth) {
      const plain = atob(v.auth);
      const i = plain.indexOf(":");
      if (i < 0) throw new Error(`Invalid Docker config: "auth" of "${key}" is not user:password`);
      return { username: plain.slice(0, i), password: plain.slice(i + 1) };
    }
    return { username: v.username, password: v.password, identityToken: v.identitytoken };
  }
  return undefined;
}
