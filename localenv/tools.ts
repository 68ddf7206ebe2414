/** Where the bootstrap put the tools the harness runs. @module */

/** The lpm cache directory (`$LPM_CACHE`, else `~/.cache/lpm`). */
export function cacheDir(): string {
  return Deno.env.get("LPM_CACHE") ?? `${Deno.env.get("HOME")}/.cache/lpm`;
}

/** Directory of the bootstrap's tool links; put first in PATH for children. */
export function toolBinDir(): string {
  return `${cacheDir()}/bin`;
}

/** PATH for child processes: the tool links first, so runc and dockerd find our CRIU. */
export function toolPath(): string {
  return `${toolBinDir()}:${Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin"}`;
}

/**
 * Absolute path of a tool: the bootstrap's link if present, else a system
 * binary. Throws naming the tool and the fix when neither exists.
 */
export function tool(name: string): string {
  const candidates = [`${toolBinDir()}/${name}`, `/usr/sbin/${name}`, `/usr/bin/${name}`];
  for (const c of candidates) {
    try {
      if (Deno.statSync(c).isFile) return c;
    } catch {
      // next
    }
  }
  throw new Error(
    `Tool "${name}" is not installed (looked in ${
      candidates.join(", ")
    }); run "bash hack/bootstrap.sh"`,
  );
}
