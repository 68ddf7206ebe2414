/** Synthetic checkpoint archives (the CRI-O layout, no real CRIU image) for OCI tests. @module */
import { runTool } from "./docker.ts";

/** What goes into a synthetic archive. */
export interface SyntheticArchiveOptions {
  /** Size of `checkpoint/pages-1.img` in MiB (its first 64 KiB of each MiB random); none when 0. */
  pagesMib?: number;
  /** Bytes of `checkpoint/inventory.img` (default 64 zero bytes). */
  inventory?: Uint8Array;
}

/** Writes `<dir>/archive.tar` in the checkpoint layout and returns its path. */
export async function syntheticArchive(
  dir: string,
  opts: SyntheticArchiveOptions = {},
): Promise<string> {
  const stage = `${dir}/stage`;
  await Deno.mkdir(`${stage}/checkpoint`, { recursive: true });
  await Deno.writeTextFile(
    `${stage}/config.dump`,
    JSON.stringify({ id: "x", name: "app", createdTime: "2026-01-01T00:00:00Z" }),
  );
  await Deno.writeTextFile(`${stage}/spec.dump`, "{}");
  await Deno.writeFile(`${stage}/checkpoint/inventory.img`, opts.inventory ?? new Uint8Array(64));
  if (opts.pagesMib) {
    const f = await Deno.open(`${stage}/checkpoint/pages-1.img`, { write: true, create: true });
    const chunk = new Uint8Array(1 << 20);
    for (let i = 0; i < opts.pagesMib; i++) {
      crypto.getRandomValues(chunk.subarray(0, 65536));
      await f.write(chunk);
    }
    f.close();
  }
  const out = `${dir}/archive.tar`;
  await runTool("tar", ["-C", stage, "-cf", out, "config.dump", "spec.dump", "checkpoint"]);
  await Deno.remove(stage, { recursive: true });
  return out;
}
