/**
 * Files the images take from this machine: a program and the shared
 * libraries it loads (the `ldd` closure), placed merged-/usr the way Debian
 * lays them out, and content hashes to key the layer cache by.
 * @module
 */
import { Sha256Counter } from "../base/sha256.ts";

/** One file of a layer: where it goes in the image and where it comes from. */
export interface HostFile {
  /** Absolute path in the image. */
  dest: string;
  /** Path on this machine (symlinks followed when copied). */
  src: string;
  /** Mode in the image (default: the source's). */
  mode?: number;
}

/** Runs `ldd` on `program` and returns the absolute paths of what it loads. */
export async function sharedLibraries(program: string): Promise<string[]> {
  const out = await new Deno.Command("ldd", { args: [program], stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success || /not a dynamic executable/.test(text)) return [];
  const libs: string[] = [];
  for (const line of text.split("\n")) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
    const m = line.match(/=>\s+(\/\S+)\s+\(/) ?? line.match(/^\s*(\/\S+)\s+\(/);
    if (m) libs.push(m[1]);
    if (/=>\s+not found/.test(line)) {
      throw new Error(`Cannot put "${program}" in an image: ldd says "${line.trim()}"`);
    }
  }
  return libs;
}

/** Where a host library goes in a merged-/usr image (`/lib/x` -> `/usr/lib/x`). */
export function mergedUsrPath(path: string): string {
  return /^\/(lib|lib64|bin|sbin)\//.test(path) ? `/usr${path}` : path;
}

/** `program` at `dest` and every library it loads, deduplicated. */
export async function programWithLibraries(program: string, dest: string): Promise<HostFile[]> {
  const files: HostFile[] = [{ dest, src: program }];
  for (const lib of await sharedLibraries(program)) {
    files.push({ dest: mergedUsrPath(lib), src: lib });
  }
  return files;
}

/** Drops later duplicates of the same destination. */
export function uniqueFiles(files: HostFile[]): HostFile[] {
  const seen = new Set<string>();
  return files.filter((f) => !seen.has(f.dest) && (seen.add(f.dest), true));
}

/** sha256 hex over the destinations, modes and contents of `files` (sorted). */
export async function hashFiles(files: HostFile[]): Promise<string> {
  const h = new Sha256Counter();
  const enc = new TextEncoder();
  for (const f of [...files].sort((a, b) => a.dest < b.dest ? -1 : a.dest > b.dest ? 1 : 0)) {
    const st = await Deno.stat(f.src);
    h.update(enc.encode(`${f.dest}\0${f.mode ?? st.mode! & 0o7777}\0${st.size}\0`));
    const file = await Deno.open(f.src);
    for await (const chunk of file.readable) h.update(chunk);
  }
  return h.hex();
}

/** Copies `files` into the staging root `root` (parents made 0755). */
export async function stageFiles(root: string, files: HostFile[]): Promise<void> {
  for (const f of files) {
    const target = `${root}${f.dest}`;
    await mkdirs(root, f.dest.slice(0, f.dest.lastIndexOf("/")));
    await Deno.copyFile(f.src, target);
    const mode = f.mode ?? ((await Deno.stat(f.src)).mode! & 0o7777);
    await Deno.chmod(target, mode);
  }
}

/** Makes `dir` (absolute in the image) under `root`, each new level 0755 whatever the umask. */
export async function mkdirs(root: string, dir: string): Promise<void> {
  let path = root;
  for (const part of dir.split("/").filter(Boolean)) {
    path += `/${part}`;
    try {
      await Deno.mkdir(path);
      await Deno.chmod(path, 0o755);
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
    }
  }
}
