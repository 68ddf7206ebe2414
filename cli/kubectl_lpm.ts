/**
 * `kubectl lpm <command> [flags]`: the kubectl plugin. `deno compile`
 * cannot build a single binary on these machines (no route to
 * dl.deno.land for `denort`), so the plugin is a small shell script
 * `kubectl-lpm` (written by `deno task kubectl-plugin`, docs/install.md)
 * that runs this file with the deno binary; it runs the same commands as
 * the deno tasks, with the same flags and progress display.
 * @module
 */
import { main as checkpoint } from "./checkpoint.ts";
import { main as drain } from "./drain.ts";
import { main as migrate } from "./migrate.ts";
import { main as restore } from "./restore.ts";
import { main as status } from "./status.ts";

/** The plugin's commands, as `deno task <name>` runs them. */
export const COMMANDS: Record<string, { run: (args: string[]) => Promise<number>; about: string }> =
  {
    migrate: { run: migrate, about: "move a running pod to another node (PodMigration)" },
    checkpoint: { run: checkpoint, about: "checkpoint a pod's containers (PodCheckpoint)" },
    restore: { run: restore, about: "restore a pod from a checkpoint (PodRestore)" },
    status: { run: status, about: "show lpm's migrations, checkpoints and restores" },
    drain: { run: drain, about: "cordon a node, migrate its opted-in pods, evict the rest" },
  };

/** The plugin's help text. */
export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    "usage: kubectl lpm <command> [flags]",
    "",
    "Live pod migration for Kubernetes (lpm). Commands:",
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.about}`),
    "",
    'Run "kubectl lpm <command> --help" for its flags.',
  ].join("\n");
}

/** Runs the plugin; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const [cmd, ...rest] = args;
  if (!cmd || cmd === "--help" || cmd === "-h" || cmd === "help") {
    console.log(usage());
    return cmd ? 0 : 2;
  }
  const c = COMMANDS[cmd];
  if (!c) {
    console.error(`Unknown command "${cmd}"\n\n${usage()}`);
    return 2;
  }
  return await c.run(rest);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
