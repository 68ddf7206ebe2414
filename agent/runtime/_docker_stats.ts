/**
 * Docker (through containerd's runc shim) runs CRIU with a work directory
 * (`criu-work` beside the task) that the shim deletes when the dump ends,
 * taking `stats-dump` and `dump.log` with it. While the dump runs we watch
 * that directory and hard-link those two files as they appear (a link keeps
 * the inode, so later writes land in it too), then move them out.
 * Best effort: when the directory is elsewhere or the link loses the race,
 * the checkpoint simply has no stats.
 * @module
 */

const WANTED = ["stats-dump", "dump.log"];

/** A running capture. */
export interface CriuFileCapture {
  /** Stops watching and moves the captured files into `dir`; returns their names. */
  finish(dir: string): Promise<string[]>;
}

/**
 * Starts capturing from the task directory `taskDir` (missing: captures
 * nothing), linking into `linkDir`, which must be on the same filesystem and
 * outlive the task (its directory goes when a stopped task is deleted).
 */
export function captureCriuFiles(taskDir: string, linkDir: string): CriuFileCapture {
  const nonce = crypto.randomUUID().slice(0, 8);
  const linked = new Map<string, string>();
  let watcher: Deno.FsWatcher | undefined;
  try {
    watcher = Deno.watchFs(taskDir, { recursive: true });
  } catch {
    watcher = undefined;
  }
  const tryLink = (path: string) => {
    const base = path.split("/").pop()!;
    if (!WANTED.includes(base) || linked.has(base) || !path.includes("/criu-work/")) return;
    const target = `${linkDir}/.lpm-${nonce}-${base}`;
    try {
      Deno.linkSync(path, target);
      linked.set(base, target);
    } catch {
      // Gone already or another filesystem: no copy of this file.
    }
  };
  const loop = (async () => {
    if (!watcher) return;
    try {
      for await (const ev of watcher) {
        if (ev.kind === "create" || ev.kind === "modify") ev.paths.forEach(tryLink);
      }
    } catch {
      // The watched directory went away.
    }
  })();
  return {
    async finish(dir: string): Promise<string[]> {
      try {
        watcher?.close();
      } catch {
        // Already closed.
      }
      await loop;
      const out: string[] = [];
      for (const [base, link] of linked) {
        try {
          await Deno.copyFile(link, `${dir}/${base}`);
          out.push(base);
        } catch {
          // Best effort: no copy of this file.
        } finally {
          await Deno.remove(link).catch(() => {});
        }
      }
      return out;
    },
  };
}
