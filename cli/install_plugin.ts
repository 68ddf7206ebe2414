/**
 * `deno task kubectl-plugin [--dir <dir>]`: writes the `kubectl-lpm` script
 * (default into `~/.cache/lpm/bin`, which the bootstrap puts in PATH) that
 * runs cli/kubectl_lpm.ts with this deno binary and this checkout, so
 * `kubectl lpm ...` works. See docs/install.md.
 * @module
 */
import { parseArgs } from "../base/args.ts";

const REPO_ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** The plugin script for `deno` and the checkout at `repo`. */
export function pluginScript(deno: string, repo: string): string {
  const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  return `#!/bin/sh
# kubectl lpm: written by "deno task kubectl-plugin" (docs/install.md).
# deno compile is unavailable here, so this runs lpm's CLI with deno.
exec ${q(deno)} run --quiet --allow-all --config ${q(`${repo}/deno.json`)} ${
    q(`${repo}/cli/kubectl_lpm.ts`)
  } "$@"
`;
}

if (import.meta.main) {
  const a = parseArgs(Deno.args, { known: ["dir"] });
  const dir = a.flags.dir ?? `${Deno.env.get("HOME")}/.cache/lpm/bin`;
  await Deno.mkdir(dir, { recursive: true });
  const path = `${dir}/kubectl-lpm`;
  await Deno.writeTextFile(path, pluginScript(Deno.execPath(), REPO_ROOT), { mode: 0o755 });
  await Deno.chmod(path, 0o755);
  console.log(`${path} written: try "kubectl lpm --help" (the directory must be in PATH)`);
}
