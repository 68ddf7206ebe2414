/**
 * The memory toucher workload: a static C program (`memory_toucher.c`, built
 * with the host's gcc) that allocates N MiB of incompressible data, prints
 * "ready N", then keeps dirtying a given percentage of its pages per second
 * and prints a counter once a second. It runs as a host process (the CRIU
 * floor of the migration benchmark) or in a pod, from an image made of the
 * environment's busybox rootfs plus the binary, pushed to its registry.
 * @module
 */
import { buildBusyboxRootfsTar, cacheDir, pushImage } from "../localenv/mod.ts";
import { reproducibleTar } from "../oci/rootfs_tar.ts";
import { sha256Hex } from "../base/sha256.ts";

const SOURCE = new URL("./memory_toucher.c", import.meta.url).pathname;

/** Path of the toucher inside its image. */
export const TOUCHER_PATH = "/bin/memory_toucher";

/** The toucher's command line: `sizeMiB` MiB, `dirtyPercentPerS` % of pages dirtied per second. */
export function memoryToucherCommand(sizeMiB: number, dirtyPercentPerS: number): string[] {
  if (!Number.isInteger(sizeMiB) || sizeMiB < 1 || sizeMiB > 65536) {
    throw new Error(`Bad toucher size "${sizeMiB}" MiB (want an integer from 1 to 65536)`);
  }
  if (!(dirtyPercentPerS >= 0 && dirtyPercentPerS <= 100)) {
    throw new Error(`Bad toucher dirty rate "${dirtyPercentPerS}" %/s (want 0 to 100)`);
  }
  return [TOUCHER_PATH, String(sizeMiB), String(dirtyPercentPerS)];
}

/** True once the toucher's output (a pod log, a file) says its memory is allocated and filled. */
export function toucherReady(output: string): boolean {
  return /^ready \d+$/m.test(output);
}

/**
 * Builds the static toucher binary with the host's gcc (cached by the
 * source's hash under lpm's cache dir) and returns its path.
 */
export async function memoryToucherBinary(): Promise<string> {
  const src = await Deno.readTextFile(SOURCE);
  const out = `${cacheDir()}/memory_toucher-${sha256Hex(src).slice(0, 16)}`;
  if (await Deno.stat(out).then(() => true, () => false)) return out;
  const cc = await new Deno.Command("gcc", {
    args: ["-O2", "-static", "-o", `${out}.tmp`, SOURCE],
    stderr: "piped",
  }).output().catch((err) => {
    throw new Error(`Cannot run gcc to build the memory toucher: ${(err as Error).message}`);
  });
  if (!cc.success) {
    throw new Error(`gcc cannot build ${SOURCE}: ${new TextDecoder().decode(cc.stderr)}`);
  }
  await Deno.rename(`${out}.tmp`, out);
  return out;
}

/**
 * Pushes the toucher's image (busybox rootfs + the binary, two layers) to
 * the registry at `registryHost` and returns its reference.
 */
export async function memoryToucherImage(registryHost: string): Promise<string> {
  const bin = await memoryToucherBinary();
  const dir = await Deno.makeTempDir({ prefix: "lpm-toucher-image-" });
  try {
    const base = await buildBusyboxRootfsTar(`${dir}/busybox.tar`);
    await Deno.mkdir(`${dir}/layer/bin`, { recursive: true });
    await Deno.copyFile(bin, `${dir}/layer${TOUCHER_PATH}`);
    await Deno.chmod(`${dir}/layer${TOUCHER_PATH}`, 0o755);
    await reproducibleTar(`${dir}/layer`, `${dir}/toucher.tar`);
    const tag = bin.replace(/^.*-/, "");
    const pushed = await pushImage(registryHost, `lpm/memory-toucher:${tag}`, {
      layers: [{ path: base }, { path: `${dir}/toucher.tar` }],
      config: { Cmd: ["/bin/sh"], Env: ["PATH=/bin"], WorkingDir: "/" },
    });
    return pushed.reference;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
