/** A real OCI registry (Debian's docker-registry, distribution 2.8) on loopback. @module */
import { type ManagedProcess, startProcess } from "./_process.ts";
import { freePort, waitFor } from "./_wait.ts";
import { tool } from "./tools.ts";

/** Connection details of the registry. */
export interface RegistryInfo {
  /** host:port, e.g. 127.0.0.1:5000 (plain HTTP). */
  host: string;
  /** Storage directory. */
  dataDir: string;
}

/** Starts a registry storing its blobs in `dir`. */
export async function startRegistry(
  dir: string,
  opts: { logDir: string; port?: number },
): Promise<{ info: RegistryInfo; process: ManagedProcess }> {
  const port = opts.port ?? freePort();
  const dataDir = `${dir}/data`;
  await Deno.mkdir(dataDir, { recursive: true });
  const config = `${dir}/config.yml`;
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
      "",
    ].join("\n"),
  );
  const proc = startProcess("registry", [tool("docker-registry"), "serve", config], {
    logPath: `${opts.logDir}/registry.log`,
  });
  const host = `127.0.0.1:${port}`;
  try {
    await waitFor(async () => {
      const r = await fetch(`http://${host}/v2/`);
      await r.body?.cancel();
      return r.status === 200;
    }, { what: "registry /v2/", timeoutMs: 30_000, exited: proc.exited });
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return { info: { host, dataDir }, process: proc };
}
