/**
 * OCI image layout directories (`oci-layout`, `index.json`, `blobs/sha256/`)
 * and their tarballs, for carrying a checkpoint image where no registry is
 * reachable. Blobs are written to a temp file while hashed, then renamed to
 * their digest, so a blob path always holds complete, verified content.
 * @module
 */
import { extractTar } from "../archive/mod.ts";
import {
  boundedInflate,
  ConfinementError,
  LIMITS,
  limitStream,
  type MemberKind,
} from "../confine/mod.ts";
import { digestBytes, digestHex, DigestStream } from "./digest.ts";
import { type Descriptor, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE } from "./media_types.ts";

/** Annotation naming a manifest in `index.json`. */
export const REF_NAME = "org.opencontainers.image.ref.name";

/** An OCI image index (`index.json`). */
export interface ImageIndex {
  /** Always 2. */
  schemaVersion: 2;
  /** {@linkcode INDEX_MEDIA_TYPE}. */
  mediaType?: string;
  /** Manifests. */
  manifests: Descriptor[];
}

/** An OCI image layout directory. */
export class OciLayout {
  /** Opens (or creates, with `create`) the layout at `dir`. */
  static async open(dir: string, opts: { create?: boolean } = {}): Promise<OciLayout> {
    try {
      const marker = JSON.parse(await Deno.readTextFile(`${dir}/oci-layout`));
      if (marker.imageLayoutVersion !== "1.0.0") {
        throw new Error(
          `Unsupported OCI layout version "${marker.imageLayoutVersion}" in "${dir}"`,
        );
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound) || !opts.create) {
        if (err instanceof Deno.errors.NotFound) {
          throw new Error(`Not an OCI image layout: "${dir}" has no "oci-layout" file`);
        }
        throw err;
      }
      await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
      await Deno.writeTextFile(
        `${dir}/oci-layout`,
        JSON.stringify({ imageLayoutVersion: "1.0.0" }),
      );
      await Deno.writeTextFile(
        `${dir}/index.json`,
        JSON.stringify({ schemaVersion: 2, mediaType: INDEX_MEDIA_TYPE, manifests: [] }),
      );
    }
    return new OciLayout(dir);
  }

  private constructor(readonly dir: string) {}

  /** Path of a blob. */
  blobPath(digest: string): string {
    return `${this.dir}/blobs/sha256/${digestHex(digest)}`;
  }

  /** Whether the blob is present (with `size`, when given). */
  async hasBlob(digest: string, size?: number): Promise<boolean> {
    try {
      const st = await Deno.stat(this.blobPath(digest));
      return size === undefined || st.size === size;
    } catch {
      return false;
    }
  }

  /**
   * Writes a blob from a stream. With `expect`, the content must match that
   * digest and size or nothing is kept (a truncated or corrupt download).
   */
  async writeBlob(
    stream: ReadableStream<Uint8Array>,
    expect?: { digest: string; size?: number },
  ): Promise<{ digest: string; size: number }> {
    const tmp = `${this.dir}/blobs/sha256/.tmp-${crypto.randomUUID()}`;
    const d = new DigestStream();
    try {
      const f = await Deno.open(tmp, { write: true, createNew: true });
      // A blob of known size stops at one byte past it, not when the disk is full.
      const bounded = expect?.size !== undefined
        ? limitStream(stream, expect.size, `blob ${expect.digest}`)
        : stream;
      await bounded.pipeThrough(d).pipeTo(f.writable);
      if (expect) {
        if (expect.size !== undefined && d.size !== expect.size) {
          throw new Error(
            `Blob ${expect.digest} is ${d.size} bytes, expected ${expect.size} (truncated or padded)`,
          );
        }
        if (d.digest !== expect.digest) {
          throw new Error(`Blob content digest ${d.digest} does not match ${expect.digest}`);
        }
      }
      await Deno.rename(tmp, this.blobPath(d.digest));
      return { digest: d.digest, size: d.size };
    } catch (err) {
      await Deno.remove(tmp).catch(() => {});
      throw err;
    }
  }

  /** Writes a small blob (JSON documents). */
  async writeBytes(bytes: Uint8Array): Promise<{ digest: string; size: number }> {
    const digest = digestBytes(bytes);
    const tmp = `${this.dir}/blobs/sha256/.tmp-${crypto.randomUUID()}`;
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, this.blobPath(digest));
    return { digest, size: bytes.length };
  }

  /** Reads a small blob (at most `max` bytes, default 4 MiB), verifying its digest. */
  async readBytes(
    digest: string,
    max: number = LIMITS.manifestBytes,
  ): Promise<Uint8Array<ArrayBuffer>> {
    const path = this.blobPath(digest);
    const size = (await Deno.stat(path)).size;
    if (size > max) {
      throw new Error(`Blob ${digest} in "${this.dir}" is ${size} bytes, over the limit ${max}`);
    }
    const bytes = await Deno.readFile(path);
    if (digestBytes(bytes) !== digest) {
      throw new Error(`Blob ${digest} in "${this.dir}" is corrupt (digest mismatch)`);
    }
    return bytes;
  }

  /** Opens a blob for streaming. */
  async openBlob(digest: string): Promise<ReadableStream<Uint8Array>> {
    try {
      return (await Deno.open(this.blobPath(digest))).readable;
    } catch {
      throw new Error(`Blob ${digest} is missing from OCI layout "${this.dir}"`);
    }
  }

  /** The index. */
  async index(): Promise<ImageIndex> {
    const path = `${this.dir}/index.json`;
    const st = await Deno.lstat(path);
    if (!st.isFile || st.size > LIMITS.manifestBytes) {
      throw new Error(
        `Invalid OCI layout "${this.dir}": "index.json" is not a regular file under ` +
          `${LIMITS.manifestBytes} bytes`,
      );
    }
    let index: ImageIndex;
    try {
      index = JSON.parse(await Deno.readTextFile(path));
    } catch (err) {
      throw new Error(`Invalid OCI layout "${this.dir}": "index.json": ${(err as Error).message}`);
    }
    if (!index || !Array.isArray(index.manifests)) {
      throw new Error(`Invalid OCI layout "${this.dir}": "index.json" has no "manifests" list`);
    }
    return index;
  }

  /** Adds (or replaces, by `refName`) a manifest in the index. */
  async addManifest(desc: Descriptor, refName?: string): Promise<void> {
    const index = await this.index();
    const entry: Descriptor = {
      mediaType: desc.mediaType ?? MANIFEST_MEDIA_TYPE,
      digest: desc.digest,
      size: desc.size,
    };
    if (refName) entry.annotations = { [REF_NAME]: refName };
    index.manifests = index.manifests.filter((m) =>
      refName ? m.annotations?.[REF_NAME] !== refName : m.digest !== desc.digest
    );
    index.manifests.push(entry);
    const tmp = `${this.dir}/.index-${crypto.randomUUID()}.json`;
    await Deno.writeTextFile(tmp, JSON.stringify(index));
    await Deno.rename(tmp, `${this.dir}/index.json`);
  }

  /**
   * The manifest descriptor for `ref` (a ref name, a digest, or absent: the
   * only manifest).
   */
  async resolve(ref?: string): Promise<Descriptor> {
    const { manifests } = await this.index();
    const found = ref === undefined
      ? (manifests.length === 1 ? manifests[0] : undefined)
      : manifests.find((m) => m.digest === ref || m.annotations?.[REF_NAME] === ref);
    if (!found) {
      const names = manifests.map((m) => m.annotations?.[REF_NAME] ?? m.digest).join(", ");
      throw new Error(
        ref === undefined
          ? `OCI layout "${this.dir}" has ${manifests.length} manifests (${names}); name one`
          : `OCI layout "${this.dir}" has no manifest "${ref}" (has: ${names || "none"})`,
      );
    }
    return found;
  }
}

async function tar(args: string[], what: string): Promise<void> {
  const out = await new Deno.Command("tar", { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`Cannot ${what}: tar failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/** Writes the layout `dir` as an OCI layout tarball (`oci-archive`) at `out`. */
export async function writeLayoutTarball(dir: string, out: string): Promise<void> {
  await OciLayout.open(dir);
  await tar(
    [
      "--numeric-owner",
      "--owner=0",
      "--group=0",
      "--exclude=.tmp-*",
      "-C",
      dir,
      "-cf",
      out,
      "oci-layout",
      "index.json",
      "blobs",
    ],
    `write OCI layout tarball "${out}"`,
  );
}

/**
 * Why `name` (of kind `type`) is not part of an OCI layout tarball, or
 * undefined: `oci-layout`, `index.json`, `blobs/sha256/<hex>` and their
 * directories; `manifest.json` and `repositories` (what `docker save` adds)
 * are tolerated. Regular files and directories only.
 */
export function layoutTarballProblem(name: string, type: MemberKind): string | undefined {
  const dirs = ["blobs", "blobs/sha256"];
  const files = ["oci-layout", "index.json", "manifest.json", "repositories"];
  if (dirs.includes(name)) return type === "dir" ? undefined : `"${name}" must be a directory`;
  if (files.includes(name) || /^blobs\/sha256\/[a-f0-9]{64}$/.test(name)) {
    return type === "file" ? undefined : `"${name}" must be a regular file`;
  }
  return "it is not part of an OCI image layout (oci-layout, index.json, blobs/sha256/<hex>)";
}

/**
 * Unpacks an OCI layout tarball (from outside) into `dir` and opens it.
 * Members are confined and checked against the layout before each is
 * written: absolute paths, `..`, links, devices and other names are refused.
 */
export async function readLayoutTarball(tarball: string, dir: string): Promise<OciLayout> {
  const what = `OCI layout tarball "${tarball}"`;
  try {
    // GNU tar, which this replaced, also took gzip-compressed tarballs.
    const head = new Uint8Array(2);
    const f = await Deno.open(tarball);
    const n = await f.read(head);
    f.close();
    const gzip = n === 2 && head[0] === 0x1f && head[1] === 0x8b;
    const source = gzip
      ? boundedInflate(
        (await Deno.open(tarball)).readable,
        (s) =>
          s.pipeThrough(new DecompressionStream("gzip") as TransformStream<Uint8Array, Uint8Array>),
        { what },
      )
      : tarball;
    await extractTar(source, dir, {
      what,
      symlinks: "none",
      hardlinks: false,
      devices: false,
      layout: layoutTarballProblem,
    });
  } catch (err) {
    if (err instanceof ConfinementError) throw err;
    throw new Error(`Cannot read OCI layout tarball "${tarball}": ${(err as Error).message}`);
  }
  return await OciLayout.open(dir);
}
