/**
 * `deno task images [--push <registry>] [--worktree] [--revision <commit>]`:
 * builds the controller and agent images (docs/install.md) and prints their
 * digests and sizes; with --push, pushes them to `<registry>/lpm/<name>:<tag>`.
 * @module
 */
import { parseCommandArgs } from "../base/args.ts";
import { buildLpmImages } from "./build.ts";
import { pushLpmImages } from "./push.ts";

const USAGE = `usage: deno task images [--push <host:port>] [--worktree] [--revision <commit>]
  --worktree   take lpm's source from the working tree (tracked files) instead of the commit`;

function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** Runs the command; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(args, {
    known: ["push", "worktree", "revision", "help"],
    booleans: ["worktree", "help"],
    aliases: { h: "help" },
  }, USAGE);
  if ("exit" in parsed) return parsed.exit;
  const a = parsed.args;
  const t0 = Date.now();
  const built = await buildLpmImages({
    worktree: a.flags.worktree === "true",
    revision: a.flags.revision,
    onProgress: (m) => console.error(`[lpm images] ${m}`),
  });
  console.error(
    `[lpm images] built ${built.tag} in ${
      ((Date.now() - t0) / 1000).toFixed(1)
    } s (layout ${built.layoutDir})`,
  );
  for (const img of built.images) {
    console.log(
      `lpm/${img.name}:${built.tag}  ${img.manifest.digest}  ${mib(img.size)} compressed, ${
        mib(img.unpackedSize)
      } unpacked`,
    );
  }
  if (a.flags.push) {
    for (const p of await pushLpmImages(built, a.flags.push)) {
      console.log(`pushed ${p.tagged} (${p.reference}; ${mib(p.uploadedBytes)} uploaded)`);
    }
  }
  return 0;
}

if (import.meta.main) {
  main(Deno.args).then((code) => Deno.exit(code), (err) => {
    console.error(`[lpm images] ERROR: ${(err as Error).message}`);
    Deno.exit(1);
  });
}
