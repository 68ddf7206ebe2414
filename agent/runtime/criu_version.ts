/** The version of the CRIU binary the node's runtime calls. @module */

/**
 * Runs `<criu> --version` (default: `criu` from PATH, as runc finds it) and
 * returns the version (`4.1.1`), or undefined when CRIU is not there.
 */
export async function criuVersion(criu = "criu"): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(criu, {
      args: ["--version"],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) return undefined;
    return /Version:\s*(\S+)/.exec(new TextDecoder().decode(out.stdout))?.[1];
  } catch {
    return undefined;
  }
}
