/**
 * An {@linkcode ImagePublisher} over the OCI distribution API: the CRI-O
 * checkpoint image format (one uncompressed layer that is the archive itself,
 * the checkpoint annotations on the manifest), blobs streamed from the file,
 * the manifest pushed by digest, the tag pushed last by `tag()`.
 *
 * The layer digest is the archive's sha256, which the store already computed,
 * so the archive is read once for the store and once for the upload, and
 * never hashed twice. (Kept small on purpose; `oci/` owns the full image
 * builder, and this publisher can delegate to it when it offers the same
 * push-by-digest-then-tag split.)
 * @module
 */
import type { ImagePublisher, PushedImage, RegistrySettings } from "./pipeline.ts";
import { hostArchitecture, LPM } from "../oci/mod.ts";

const LAYER = "application/vnd.oci.image.layer.v1.tar";
const CONFIG = "application/vnd.oci.image.config.v1+json";
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256File(path: string): Promise<string> {
  // Only used when the caller did not pass the digest: stream through a hasher.
  const { createHash } = await import("node:crypto");
  const h = createHash("sha256");
  const f = await Deno.open(path);
  for await (const chunk of f.readable) h.update(chunk);
  return h.digest("hex");
}

/** A registry client bound to one repository. */
class Registry {
  readonly base: string;
  readonly repo: string;
  readonly client?: Deno.HttpClient;
  readonly auth?: string;

  constructor(settings: RegistrySettings) {
    const slash = settings.repository.indexOf("/");
    if (slash < 0) {
      throw new Error(`Registry repository "${settings.repository}" has no host part`);
    }
    this.base = `${settings.insecure ? "http" : "https"}://${
      settings.repository.slice(0, slash)
    }/v2`;
    this.repo = settings.repository.slice(slash + 1);
    this.client = settings.caBundle
      ? Deno.createHttpClient({ caCerts: [settings.caBundle] })
      : undefined;
    const c = settings.credentials;
    if (c?.username) this.auth = `Basic ${btoa(`${c.username}:${c.password ?? ""}`)}`;
  }

  async fetch(url: string, init: RequestInit, what: string, ok: number[]): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.auth) headers.set("authorization", this.auth);
    const full = url.startsWith("http") ? url : `${this.base}${url}`;
    let res: Response;
    try {
      res = await fetch(full, { ...init, headers, client: this.client });
    } catch (err) {
      throw new Error(`Cannot ${what}: registry unreachable at ${full}: ${(err as Error).message}`);
    }
    if (!ok.includes(res.status)) {
      const body = (await res.text()).slice(0, 300);
      throw new Error(`Cannot ${what}: the registry answered ${res.status}: ${body}`);
    }
    return res;
  }

  async hasBlob(digest: string): Promise<boolean> {
    const res = await this.fetch(
      `/${this.repo}/blobs/${digest}`,
      { method: "HEAD" },
      "check a blob",
      [
        200,
        404,
      ],
    );
    await res.body?.cancel();
    return res.status === 200;
  }

  /** Uploads a small blob in one request. */
  async putBlob(
    digest: string,
    body: Uint8Array<ArrayBuffer>,
    signal?: AbortSignal,
  ): Promise<void> {
    if (await this.hasBlob(digest)) return;
    const loc = await this.startUpload(signal);
    const url = new URL(loc, this.base);
    url.searchParams.set("digest", digest);
    const res = await this.fetch(
      url.toString(),
      {
        method: "PUT",
        body,
        signal,
        headers: { "content-type": "application/octet-stream" },
      },
      `upload blob ${digest}`,
      [201],
    );
    await res.body?.cancel();
  }

  /**
   * Streams a blob whose digest is known only when the stream has ended (it
   * is computed elsewhere, e.g. by the store reading the same file at the
   * same time): PATCH the data, then PUT the digest to close the upload.
   */
  async streamBlob(
    body: ReadableStream<Uint8Array>,
    digest: Promise<string>,
    signal?: AbortSignal,
  ): Promise<void> {
    const loc = await this.startUpload(signal);
    const patch = await this.fetch(
      new URL(loc, this.base).toString(),
      {
        method: "PATCH",
        body,
        signal,
        headers: { "content-type": "application/octet-stream" },
      },
      "stream a blob",
      [202],
    );
    await patch.body?.cancel();
    const next = patch.headers.get("location") ?? loc;
    const url = new URL(next, this.base);
    url.searchParams.set("digest", await digest);
    const res = await this.fetch(url.toString(), { method: "PUT", signal }, "close a blob upload", [
      201,
    ]);
    await res.body?.cancel();
  }

  async startUpload(signal?: AbortSignal): Promise<string> {
    const start = await this.fetch(
      `/${this.repo}/blobs/uploads/`,
      { method: "POST", signal },
      "start a blob upload",
      [202],
    );
    await start.body?.cancel();
    const loc = start.headers.get("location");
    if (!loc) throw new Error("Cannot upload a blob: the registry sent no upload location");
    return loc;
  }

  async putManifest(
    reference: string,
    bytes: Uint8Array<ArrayBuffer>,
    signal?: AbortSignal,
  ): Promise<void> {
    const res = await this.fetch(
      `/${this.repo}/manifests/${reference}`,
      {
        method: "PUT",
        body: bytes,
        signal,
        headers: { "content-type": MANIFEST },
      },
      `push manifest "${reference}"`,
      [201],
    );
    await res.body?.cancel();
  }
}

/** Creates the publisher. */
export function createImagePublisher(): ImagePublisher {
  return {
    async push(archivePath, opts): Promise<PushedImage> {
      const reg = new Registry(opts.registry);
      const size = opts.size ?? (await Deno.stat(archivePath)).size;
      const layerHex = Promise.resolve(opts.sha256 ?? sha256File(archivePath));
      let sent = 0;
      const counted = (await Deno.open(archivePath)).readable.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, c) {
            sent += chunk.length;
            opts.onProgress?.(sent);
            c.enqueue(chunk);
          },
        }),
      );
      const layerDigestP = layerHex.then((h) => `sha256:${h}`);
      // Awaited only after the data went up: an earlier failure must not leave it unhandled.
      layerDigestP.catch(() => {});
      await reg.streamBlob(counted, layerDigestP, opts.signal);
      const layerDigest = `sha256:${await layerHex}`;
      const config = new TextEncoder().encode(JSON.stringify({
        architecture: hostArchitecture(),
        os: "linux",
        created: new Date().toISOString(),
        config: {},
        rootfs: { type: "layers", diff_ids: [layerDigest] },
      }));
      const configDigest = `sha256:${await sha256Hex(config)}`;
      await reg.putBlob(configDigest, config, opts.signal);
      const manifest = new TextEncoder().encode(JSON.stringify({
        schemaVersion: 2,
        mediaType: MANIFEST,
        config: { mediaType: CONFIG, digest: configDigest, size: config.length },
        layers: [{ mediaType: LAYER, digest: layerDigest, size }],
        // The layer is the archive itself: its digest is the archive's sha256.
        annotations: { ...opts.annotations, [LPM.archiveSha256]: layerDigest.slice(7) },
      }));
      const digest = `sha256:${await sha256Hex(manifest)}`;
      await reg.putManifest(digest, manifest, opts.signal);
      const repository = opts.registry.repository;
      return {
        digest,
        reference: `${repository}@${digest}`,
        tag: () =>
          reg.putManifest(opts.tag, manifest, opts.signal).finally(() => reg.client?.close()),
      };
    },
  };
}
