/**
 * Workload images made from Debian 12 (bookworm) packages, never pulled from
 * the internet: apt resolves the dependency closure of the named packages
 * against an empty dpkg status (so the host's installed packages do not hide
 * any), `apt-get download` fetches exactly those versions (apt checks their
 * hashes), and each .deb's data is unpacked into a merged-/usr staging root.
 * No maintainer script runs, so the few things they would create (users,
 * /tmp, /run, log dirs) are written here, and busybox-static's applets give
 * the image a shell and the small tools the tests use (ps, wget, cat).
 *
 * The rootfs tar is cached as `~/.cache/lpm/images/<name>-<hash>.tar`, the
 * hash covering the exact package files (name, version, SHA-256) and the
 * extra files, so a rerun builds nothing until Debian publishes an update;
 * apt's resolution is cached beside it until apt's package lists change.
 * @module
 */
import { sha256Hex } from "../base/sha256.ts";
import { cacheDir } from "./tools.ts";
import { pushImage } from "./registry_push.ts";
import { reproducibleTar } from "./images.ts";

/** What goes into a workload image. */
export interface WorkloadImageSpec {
  /** Image name, also the cache file's prefix and the repository `lpm/<name>`. */
  name: string;
  /** Debian packages (bookworm); their dependency closure is added. */
  packages: string[];
  /** Extra files: absolute path in the image -> content. */
  files?: Record<string, string>;
}

/** One package file apt would fetch. */
interface DebFile {
  /** `name=version` for `apt-get download`. */
  pin: string;
  /** File name `name_version_arch.deb` (epoch colon URL-encoded, as apt writes it). */
  file: string;
  /** `SHA256:...` as apt prints it. */
  hash: string;
}

/** Bumped when the layout built below changes, so cached tars are rebuilt. */
const BUILDER_VERSION = "2";

const decoder = new TextDecoder();

async function run(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: opts.cwd,
    stdout: "piped",
    stderr: "piped",
    env: { DEBIAN_FRONTEND: "noninteractive" },
  }).output();
  if (!out.success) {
    throw new Error(
      `Command "${cmd} ${args.join(" ")}" failed (exit ${out.code}): ${
        decoder.decode(out.stderr).trim().slice(-2000)
      }`,
    );
  }
  return decoder.decode(out.stdout);
}

/**
 * The package files of `packages` and their whole dependency closure, as
 * apt's own resolver sees it from an empty system (Recommends left out).
 */
async function resolve(packages: string[]): Promise<DebFile[]> {
  const status = await Deno.makeTempFile({ prefix: "lpm-empty-dpkg-status-" });
  try {
    const text = await run("apt-get", [
      "install",
      "--print-uris",
      "-qq",
      "-y",
      "--no-install-recommends",
      "-o",
      `Dir::State::status=${status}`,
      "-o",
      "Debug::NoLocking=1",
      "-o",
      "APT::Default-Release=bookworm",
      // The staging root is merged-/usr: say so, or apt satisfies
      // init-system-helpers with usrmerge and its whole Perl.
      "usr-is-merged",
      ...packages,
    ]);
    const debs: DebFile[] = [];
    // Each line: 'URI' name_version_arch.deb SIZE SHA256:...
    for (const line of text.split("\n")) {
      const m = line.match(/^'[^']+' (([^_]+)_([^_]+)_[^_]+\.deb) \d+ (\S+)/);
      if (m) debs.push({ file: m[1], pin: `${m[2]}=${decodeURIComponent(m[3])}`, hash: m[4] });
    }
    if (debs.length === 0) {
      throw new Error(
        `apt resolved no package files for "${packages.join(" ")}" (apt-get update not run?): ${
          text.slice(0, 500)
        }`,
      );
    }
    return debs.sort((a, b) => a.file.localeCompare(b.file));
  } finally {
    await Deno.remove(status);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** Users the programs expect; every workload runs as root (see the test). */
const PASSWD = [
  "root:x:0:0:root:/root:/bin/sh",
  "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin",
  "redis:x:100:101:redis:/var/lib/redis:/usr/sbin/nologin",
  "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
].join("\n") + "\n";
const GROUP = ["root:x:0:", "www-data:x:33:", "redis:x:101:", "nogroup:x:65534:"].join("\n") +
  "\n";

async function buildRootfs(debs: DebFile[], spec: WorkloadImageSpec, out: string): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: `lpm-image-${spec.name}-` });
  const root = `${work}/root`;
  try {
    await Deno.mkdir(`${work}/debs`);
    await run("apt-get", ["download", "-q", ...debs.map((d) => d.pin)], { cwd: `${work}/debs` });
    // Merged /usr, as bookworm systems are: bookworm's packages still ship
    // some files under /lib and /bin, and tar keeps these links (below).
    await Deno.mkdir(`${root}/usr`, { recursive: true });
    for (const d of ["bin", "sbin", "lib", "lib64"]) {
      await Deno.mkdir(`${root}/usr/${d}`, { recursive: true });
      await Deno.symlink(`usr/${d}`, `${root}/${d}`);
    }
    for (const entry of await Array.fromAsync(Deno.readDir(`${work}/debs`))) {
      const deb = `${work}/debs/${entry.name}`;
      await run("sh", [
        "-c",
        `dpkg-deb --fsys-tarfile "$1" | tar -x --keep-directory-symlink -C "$2"`,
        "sh",
        deb,
        root,
      ]);
    }
    // Documentation is never read in a container; it is most of some packages.
    for (const d of ["doc", "man", "info", "locale", "lintian"]) {
      await Deno.remove(`${root}/usr/share/${d}`, { recursive: true }).catch(() => {});
    }
    for (
      const d of ["tmp", "run", "proc", "sys", "dev", "root", "var/log/nginx", "var/lib/nginx"]
    ) {
      await Deno.mkdir(`${root}/${d}`, { recursive: true });
    }
    await Deno.chmod(`${root}/tmp`, 0o1777);
    if (!(await exists(`${root}/var/run`))) await Deno.symlink("../run", `${root}/var/run`);
    await Deno.writeTextFile(`${root}/etc/passwd`, PASSWD);
    await Deno.writeTextFile(`${root}/etc/group`, GROUP);
    // busybox-static gives the shell and small tools; real programs keep their names.
    const busybox = `${root}/usr/bin/busybox`;
    if (!(await exists(busybox))) {
      throw new Error(`Image "${spec.name}" has no /usr/bin/busybox: add "busybox-static"`);
    }
    for (const applet of (await run(busybox, ["--list"])).split("\n").filter(Boolean)) {
      if (
        !(await exists(`${root}/usr/bin/${applet}`)) &&
        !(await exists(`${root}/usr/sbin/${applet}`))
      ) {
        await Deno.symlink("busybox", `${root}/usr/bin/${applet}`);
      }
    }
    for (const [path, content] of Object.entries(spec.files ?? {})) {
      await Deno.mkdir(`${root}${path.replace(/\/[^/]*$/, "")}`, { recursive: true });
      await Deno.writeTextFile(`${root}${path}`, content);
    }
    const tmp = `${out}.tmp-${crypto.randomUUID().slice(0, 8)}`;
    await reproducibleTar(root, tmp);
    await Deno.rename(tmp, out);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

/**
 * `resolve` with its answer cached until apt's package lists change: apt's
 * resolver takes 10 s or more here (three suites' lists), the cache a few ms.
 */
async function resolveCached(packages: string[], dir: string): Promise<DebFile[]> {
  const lists = "/var/lib/apt/lists";
  const stamps: string[] = [];
  for await (const e of Deno.readDir(lists)) {
    if (!e.isFile || !e.name.includes("_Packages")) continue;
    const st = await Deno.stat(`${lists}/${e.name}`);
    stamps.push(`${e.name} ${st.size} ${st.mtime?.getTime()}`);
  }
  const key = sha256Hex(JSON.stringify({ packages, lists: stamps.sort() }));
  const path = `${dir}/resolved-${key.slice(0, 16)}.json`;
  try {
    return JSON.parse(await Deno.readTextFile(path)) as DebFile[];
  } catch {
    const debs = await resolve(packages);
    const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
    await Deno.writeTextFile(tmp, JSON.stringify(debs));
    await Deno.rename(tmp, path);
    return debs;
  }
}

/**
 * The rootfs tar of `spec` (uncompressed), built from Debian's packages or
 * taken from the cache when the same package files were built before.
 */
export async function buildWorkloadRootfs(spec: WorkloadImageSpec): Promise<string> {
  const dir = `${cacheDir()}/images`;
  await Deno.mkdir(dir, { recursive: true });
  const debs = await resolveCached(spec.packages, dir);
  const key = sha256Hex(JSON.stringify({
    builder: BUILDER_VERSION,
    debs: debs.map((d) => `${d.file} ${d.hash}`),
    files: Object.entries(spec.files ?? {}).sort(),
  }));
  const path = `${dir}/${spec.name}-${key.slice(0, 16)}.tar`;
  if (!(await exists(path))) await buildRootfs(debs, spec, path);
  return path;
}

/**
 * Builds (or takes from the cache) the image of `spec` and pushes it to the
 * registry at `registryHost` as `lpm/<name>:<hash>`; returns its reference.
 */
export async function pushWorkloadImage(
  registryHost: string,
  spec: WorkloadImageSpec,
): Promise<string> {
  const rootfs = await buildWorkloadRootfs(spec);
  const tag = rootfs.replace(/^.*-([0-9a-f]+)\.tar$/, "$1");
  const pushed = await pushImage(registryHost, `lpm/${spec.name}:${tag}`, {
    layers: [{ path: rootfs }],
    config: {
      Cmd: ["/bin/sh"],
      Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"],
      WorkingDir: "/",
    },
  });
  return pushed.reference;
}
