/**
 * The migration benchmark's floor: the memory toucher as a host process in
 * a session of its own, `criu dump` into a directory (CRIU freezes it, dumps
 * it and kills it), then `criu restore -d` from the same directory (the
 * restored process detaches once running), both timed by wall clock. The
 * restored process is killed and the directory removed afterwards.
 * @module
 */
import { tool, waitFor } from "../localenv/mod.ts";
import { toucherReady } from "../testing/memory_toucher.ts";

/** The floor's two halves, seconds. */
export interface FloorTimes {
  /** `criu dump` wall time (freeze, dump, write the images). */
  dumpS: number;
  /** `criu restore -d` wall time (until the restored process runs). */
  restoreS: number;
}

async function criu(args: string[]): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command(tool("criu"), { args, stdout: "null", stderr: "piped" })
    .output();
  const s = (performance.now() - t0) / 1000;
  if (!out.success) {
    throw new Error(
      `criu ${args[0]} failed (exit ${out.code}): ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
  return s;
}

/**
 * Starts the toucher in its own session (CRIU dumps a session leader without
 * a terminal) with its output in `log`. It stays this process's child, so the
 * dump's kill is reaped before the restore reuses its pid.
 */
function startToucher(bin: string, log: string, sizeMiB: number, dirty: number): Deno.ChildProcess {
  const sh = `exec setsid ${bin} ${sizeMiB} ${dirty} > ${log} 2>&1 < /dev/null`;
  return new Deno.Command("sh", { args: ["-c", sh], stdin: "null", stdout: "null", stderr: "null" })
    .spawn();
}

function kill(pid: number): void {
  try {
    Deno.kill(pid, "SIGKILL");
  } catch { /* already gone */ }
}

/**
 * Dumps and restores a `sizeMiB` MiB toucher dirtying `dirty` %/s with CRIU,
 * images in a fresh directory under `dir`.
 */
export async function hostFloor(
  bin: string,
  dir: string,
  sizeMiB: number,
  dirty: number,
): Promise<FloorTimes> {
  const work = await Deno.makeTempDir({ dir, prefix: `floor-${sizeMiB}-` });
  const log = `${work}/toucher.log`;
  const images = `${work}/images`;
  await Deno.mkdir(images);
  const child = startToucher(bin, log, sizeMiB, dirty);
  const pid = child.pid;
  try {
    await waitFor(
      async () => toucherReady(await Deno.readTextFile(log).catch(() => "")),
      { what: `the ${sizeMiB} MiB host toucher to fill its memory`, timeoutMs: 120_000 },
    );
    await new Promise((r) => setTimeout(r, 1000)); // let it dirty pages, as the pod does
    const dumpS = await criu(["dump", "-t", String(pid), "-D", images, "-o", "dump.log"]);
    await child.status; // reaped: its pid is free for the restore
    const restoreS = await criu(["restore", "-D", images, "-d", "-o", "restore.log"])
      .catch(async (err) => {
        const log = await Deno.readTextFile(`${images}/restore.log`).catch(() => "");
        throw new Error(
          `${(err as Error).message}: ${
            log.split("\n").filter((l) => l.includes("Error")).join("; ")
          }`,
        );
      });
    return { dumpS, restoreS };
  } finally {
    kill(pid); // the restored process has the same pid (and is not our child)
    await child.status.catch(() => {});
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}
