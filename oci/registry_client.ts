/**
 * A client of the OCI distribution API, the only one in lpm: ping, blob
 * HEAD / GET / upload (monolithic, chunked with resumable sessions, or
 * streamed with the digest given at the end), cross-repository mount,
 * manifest PUT / GET / HEAD by tag or digest, manifest DELETE by digest, an
 * image's config and manifest over blobs already pushed; Basic and
 * Bearer-token auth, a custom CA, and plain HTTP only when asked
 * (`insecure`) and only on a loopback address.
 *
 * Why hand-written (kept by decision): of lpm's dependencies only dockerode
 * pushes images, and only through a Docker engine, which nodes running
 * containerd do not have. The distribution API is a small HTTP protocol;
 * what lpm needs of it (a layer streamed while its digest is still being
 * computed, bounded reads of hostile answers, loopback-only plain HTTP) is
 * exactly what generic clients leave out. Pinned by oci_test.ts and the
 * registry and fault tests on a real registry (tests/oci_*_test.ts).
 * @module
 */
import type { RegistryCredentials } from "./auth.ts";
import { LIMITS, readBounded } from "../confine/mod.ts";
import { digestBytes } from "./digest.ts";
import { insecureRegistryRefusal } from "./insecure.ts";
import {
  CONFIG_MEDIA_TYPE,
  type Descriptor,
  DOCKER_MANIFEST_MEDIA_TYPE,
  type ImageManifest,
  INDEX_MEDIA_TYPE,
  MANIFEST_MEDIA_TYPE,
} from "./media_types.ts";
import { hostArchitecture } from "./platform.ts";

/** Options of {@linkcode RegistryClient}. */
export interface RegistryClientOptions {
  /** Plain HTTP (loopback registries only, else the constructor throws; never implied). */
  insecure?: boolean;
  /** Extra CA certificates (PEM) to trust. */
  caCerts?: string[];
  /** Credentials (Basic, or exchanged for a Bearer token). */
  credentials?: RegistryCredentials;
  /** Request timeout for small requests, ms (default 30 s). */
  timeoutMs?: number;
}

/** A failed registry request. */
export class RegistryError extends Error {
  /** Creates the error. */
  constructor(
    message: string,
    readonly status: number,
    readonly codes: string[] = [],
  ) {
    super(message);
    this.name = "RegistryError";
  }
}

/** A blob upload source: a stream of the blob from `offset` (for resuming). */
export type BlobSource = (offset: number) => Promise<ReadableStream<Uint8Array>>;

/** Options of {@linkcode RegistryClient.uploadBlob}. */
export interface UploadOptions {
  /** Chunk size for a chunked upload; absent: one monolithic PUT. */
  chunkSize?: number;
  /** Retries of a failed chunk, resuming from the registry's offset (default 3). */
  retries?: number;
  /** Progress: bytes acknowledged. */
  onProgress?: (bytes: number) => void;
  /** Cancels the upload. */
  signal?: AbortSignal;
}

/** An image {@linkcode RegistryClient.putImage} publishes over blobs already pushed. */
export interface RegistryImage {
  /** Uncompressed layers (digests = `diff_ids`), lowest first, already in the repository. */
  layers: Descriptor[];
  /** Image config `config` section (Entrypoint, Cmd, Env, WorkingDir...). */
  config?: Record<string, unknown>;
  /** `created_by` of one history entry per layer, when given. */
  createdBy?: string;
  /** Manifest annotations. */
  annotations?: Record<string, string>;
  /**
   * The layers' `diff_ids` when they are not the layers' digests (an
   * encrypted layer's is its plaintext's digest, as ocicrypt has it).
   */
  diffIds?: string[];
}

type Body = Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array> | null;

const MANIFEST_ACCEPT = [MANIFEST_MEDIA_TYPE, INDEX_MEDIA_TYPE, DOCKER_MANIFEST_MEDIA_TYPE].join(
  ", ",
);

/** A client for one registry host. */
export class RegistryClient {
  /** `http(s)://host`. */
  readonly base: string;
  #client?: Deno.HttpClient;
  #opts: RegistryClientOptions;
  #tokens = new Map<string, string>();
  #basic?: string;
  #challenge?: { scheme: string; params: Record<string, string> };

  /** A client for `host` (`host:port`); throws when `insecure` names a host off loopback. */
  constructor(readonly host: string, opts: RegistryClientOptions = {}) {
    const refusal = insecureRegistryRefusal(host, opts.insecure);
    if (refusal) throw new RegistryError(refusal, 0);
    this.#opts = opts;
    this.base = `${opts.insecure ? "http" : "https"}://${host}`;
    if (opts.caCerts?.length) this.#client = Deno.createHttpClient({ caCerts: opts.caCerts });
    const c = opts.credentials;
    if (c?.username !== undefined) {
      this.#basic = `Basic ${btoa(`${c.username}:${c.password ?? ""}`)}`;
    }
  }

  /** Closes the HTTP client. */
  close(): void {
    this.#client?.close();
  }

  #scope(repo?: string, actions = "pull,push"): string {
    return repo ? `repository:${repo}:${actions}` : "";
  }

  async #authorize(scope: string): Promise<string | undefined> {
    const ch = this.#challenge;
    if (!ch) return undefined;
    if (ch.scheme === "basic") return this.#basic;
    const cached = this.#tokens.get(scope);
    if (cached) return cached;
    const url = new URL(ch.params.realm);
    if (ch.params.service) url.searchParams.set("service", ch.params.service);
    if (scope) url.searchParams.set("scope", scope);
    const headers = new Headers();
    if (this.#basic) headers.set("authorization", this.#basic);
    let res: Response;
    try {
      res = await fetch(url, { headers, client: this.#client });
    } catch (err) {
      throw new RegistryError(
        `Cannot get a registry token from "${url.origin}": ${(err as Error).message}`,
        0,
      );
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new RegistryError(
        `Cannot get a registry token for "${scope}" from "${url.origin}": it answered ${res.status}` +
          (this.#basic ? " (wrong credentials?)" : " (no credentials configured)"),
        res.status,
      );
    }
    const doc = await res.json() as { token?: string; access_token?: string };
    const token = `Bearer ${doc.token ?? doc.access_token}`;
    this.#tokens.set(scope, token);
    return token;
  }

  /**
   * Sends a request; on a 401 learns the auth challenge and retries once
   * (bodies are made by `body()` so a retry can send them again).
   */
  async request(
    method: string,
    path: string,
    opts: {
      repo?: string;
      /** Token scope actions on `repo` (default "pull,push"). */
      actions?: string;
      headers?: Record<string, string>;
      body?: () => Promise<Body> | Body;
      ok: number[];
      what: string;
      signal?: AbortSignal;
    },
  ): Promise<Response> {
    const url = path.startsWith("http") ? path : `${this.base}${path}`;
    for (let attempt = 0; attempt < 2; attempt++) {
      const headers = new Headers(opts.headers);
      const auth = await this.#authorize(this.#scope(opts.repo, opts.actions));
      if (auth) headers.set("authorization", auth);
      const body = opts.body ? await opts.body() : null;
      let res: Response;
      try {
        res = await fetch(url, {
          method,
          headers,
          body,
          client: this.#client,
          signal: opts.signal ??
            (body instanceof ReadableStream
              ? undefined
              : AbortSignal.timeout(this.#opts.timeoutMs ?? 30_000)),
        });
      } catch (err) {
        throw new RegistryError(
          `Cannot ${opts.what}: registry "${this.host}" unreachable: ${(err as Error).message}`,
          0,
        );
      }
      if (res.status === 401 && attempt === 0) {
        const challenge = parseChallenge(res.headers.get("www-authenticate"));
        await res.body?.cancel();
        if (challenge && (challenge.scheme === "bearer" || this.#basic)) {
          this.#challenge = challenge;
          this.#tokens.delete(this.#scope(opts.repo, opts.actions));
          continue;
        }
        throw new RegistryError(
          `Cannot ${opts.what}: registry "${this.host}" requires authentication and no credentials are configured`,
          401,
        );
      }
      if (!opts.ok.includes(res.status)) {
        const text = method === "HEAD" ? "" : (await res.text()).slice(0, 400);
        let codes: string[] = [];
        try {
          codes = (JSON.parse(text).errors ?? []).map((e: { code: string }) => e.code);
        } catch {
          // Not a distribution error document.
        }
        if (method === "HEAD") await res.body?.cancel();
        const hint = res.status === 401
          ? " (unauthorized: wrong credentials?)"
          : res.status === 403
          ? " (forbidden: the credentials lack access)"
          : res.status === 404
          ? " (not found)"
          : res.status === 405
          ? " (method not allowed: deletion disabled on the registry?)"
          : res.status >= 500
          ? " (registry server error)"
          : "";
        throw new RegistryError(
          `Cannot ${opts.what}: registry "${this.host}" answered ${res.status}${hint}${
            text ? `: ${text.trim()}` : ""
          }`,
          res.status,
          codes,
        );
      }
      return res;
    }
    throw new RegistryError(`Cannot ${opts.what}: authentication failed on "${this.host}"`, 401);
  }

  /** Checks that the registry speaks the distribution API (and our credentials work). */
  async ping(): Promise<void> {
    const res = await this.request("GET", "/v2/", { ok: [200], what: "ping the registry" });
    await res.body?.cancel();
  }

  /** The blob's size when the repository has it, else undefined. */
  async blobSize(repo: string, digest: string): Promise<number | undefined> {
    const res = await this.request("HEAD", `/v2/${repo}/blobs/${digest}`, {
      repo,
      ok: [200, 404],
      what: `check blob ${digest} in "${repo}"`,
    });
    await res.body?.cancel();
    return res.status === 200 ? Number(res.headers.get("content-length") ?? 0) : undefined;
  }

  /** Mounts a blob from another repository of the same registry; false when the registry declined. */
  async mountBlob(repo: string, digest: string, fromRepo: string): Promise<boolean> {
    const q = new URLSearchParams({ mount: digest, from: fromRepo });
    const res = await this.request("POST", `/v2/${repo}/blobs/uploads/?${q}`, {
      repo,
      ok: [201, 202],
      what: `mount blob ${digest} from "${fromRepo}" into "${repo}"`,
    });
    await res.body?.cancel();
    if (res.status === 201) return true;
    // 202: the registry opened an upload instead; cancel it.
    const loc = res.headers.get("location");
    if (loc) {
      await this.request("DELETE", this.#abs(loc), {
        repo,
        ok: [204, 404],
        what: "cancel an upload",
      })
        .then((r) => r.body?.cancel()).catch(() => {});
    }
    return false;
  }

  #abs(location: string): string {
    return location.startsWith("http") ? location : `${this.base}${location}`;
  }

  async #startUpload(repo: string, what: string): Promise<string> {
    const res = await this.request("POST", `/v2/${repo}/blobs/uploads/`, { repo, ok: [202], what });
    await res.body?.cancel();
    const loc = res.headers.get("location");
    if (!loc) throw new RegistryError(`Cannot ${what}: the registry gave no upload location`, 202);
    return this.#abs(loc);
  }

  /** The offset the registry holds for an upload session. */
  async uploadOffset(location: string, repo: string): Promise<number> {
    const res = await this.request("GET", location, {
      repo,
      ok: [204],
      what: "query an upload session",
    });
    await res.body?.cancel();
    const range = res.headers.get("range");
    const m = range ? /^(?:bytes=)?0-(\d+)$/.exec(range) : null;
    return m ? Number(m[1]) + 1 : 0;
  }

  /**
   * Uploads a blob of known digest and size from `source`. Monolithic (one
   * streamed PUT) unless `chunkSize` is given; chunks that fail are resumed
   * from the offset the registry reports.
   */
  async uploadBlob(
    repo: string,
    blob: { digest: string; size: number },
    source: BlobSource,
    opts: UploadOptions = {},
  ): Promise<void> {
    const what = `upload blob ${blob.digest} (${blob.size} bytes) to "${this.host}/${repo}"`;
    let location = await this.#startUpload(repo, what);
    const finish = (loc: string, body: () => Promise<Body>, length: number) => {
      const u = new URL(loc);
      u.searchParams.set("digest", blob.digest);
      return this.request("PUT", u.href, {
        repo,
        ok: [201],
        what,
        signal: opts.signal,
        headers: {
          "content-type": "application/octet-stream",
          "content-length": String(length),
        },
        body,
      });
    };
    if (!opts.chunkSize) {
      const res = await finish(location, () => source(0), blob.size);
      await res.body?.cancel();
      opts.onProgress?.(blob.size);
      return;
    }
    let offset = 0;
    let failures = 0;
    while (offset < blob.size) {
      const end = Math.min(offset + opts.chunkSize, blob.size);
      try {
        const res = await this.request("PATCH", location, {
          repo,
          ok: [202],
          what,
          signal: opts.signal,
          headers: {
            "content-type": "application/octet-stream",
            "content-range": `${offset}-${end - 1}`,
            "content-length": String(end - offset),
          },
          body: async () => limit(await source(offset), end - offset),
        });
        await res.body?.cancel();
        location = this.#abs(res.headers.get("location") ?? location);
        offset = end;
        failures = 0;
        opts.onProgress?.(offset);
      } catch (err) {
        opts.signal?.throwIfAborted();
        if (++failures > (opts.retries ?? 3)) throw err;
        offset = await this.uploadOffset(location, repo);
      }
    }
    const res = await finish(location, () => Promise.resolve(null), 0);
    await res.body?.cancel();
  }

  /**
   * Streams a blob whose digest is known only once the stream has ended (it
   * is computed elsewhere from the same bytes, e.g. by a store reading the
   * same file): the data in one PATCH, then the PUT that names the digest
   * and closes the upload. Returns the digest.
   */
  async streamBlob(
    repo: string,
    blob: { stream: ReadableStream<Uint8Array>; digest: string | Promise<string> },
    opts: { signal?: AbortSignal } = {},
  ): Promise<string> {
    const what = `stream a blob to "${this.host}/${repo}"`;
    // The upload's POST has met any auth challenge already: a 401 on the
    // PATCH (an expired token) cannot resend the consumed stream.
    let sent = false;
    const body = () => {
      if (sent) {
        throw new RegistryError(
          `Cannot ${what}: the registry asked to authenticate again mid-stream`,
          401,
        );
      }
      sent = true;
      return blob.stream;
    };
    const start = await this.#startUpload(repo, what);
    const patch = await this.request("PATCH", start, {
      repo,
      ok: [202],
      what,
      signal: opts.signal,
      headers: { "content-type": "application/octet-stream" },
      body,
    });
    await patch.body?.cancel();
    const close = new URL(this.#abs(patch.headers.get("location") ?? start));
    const digest = await blob.digest;
    close.searchParams.set("digest", digest);
    const res = await this.request("PUT", close.href, {
      repo,
      ok: [201],
      what: `close the upload of blob ${digest} to "${this.host}/${repo}"`,
      signal: opts.signal,
    });
    await res.body?.cancel();
    return digest;
  }

  /** Uploads `bytes` in one request unless the repository has them; returns their descriptor. */
  async ensureBlob(
    repo: string,
    bytes: Uint8Array,
    opts: { signal?: AbortSignal } = {},
  ): Promise<{ digest: string; size: number }> {
    const blob = { digest: digestBytes(bytes), size: bytes.length };
    if ((await this.blobSize(repo, blob.digest)) === undefined) {
      await this.uploadBlob(repo, blob, () => Promise.resolve(ReadableStream.from([bytes])), opts);
    }
    return blob;
  }

  /**
   * Pushes the config of `image` and its manifest, under `tag` when given,
   * else by digest (the publishing order of `agent/pipeline.ts`: tag last,
   * with {@linkcode putManifest} and the returned bytes).
   */
  async putImage(
    repo: string,
    image: RegistryImage,
    opts: { tag?: string; signal?: AbortSignal } = {},
  ): Promise<{ digest: string; bytes: Uint8Array<ArrayBuffer> }> {
    const config = new TextEncoder().encode(JSON.stringify({
      created: new Date().toISOString(),
      architecture: hostArchitecture(),
      os: "linux",
      config: image.config ?? {},
      rootfs: { type: "layers", diff_ids: image.diffIds ?? image.layers.map((l) => l.digest) },
      ...(image.createdBy
        ? { history: image.layers.map(() => ({ created_by: image.createdBy })) }
        : {}),
    }));
    const configBlob = await this.ensureBlob(repo, config, opts);
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MANIFEST_MEDIA_TYPE,
      config: { mediaType: CONFIG_MEDIA_TYPE, ...configBlob },
      layers: image.layers,
      ...(image.annotations ? { annotations: image.annotations } : {}),
    };
    const bytes = new TextEncoder().encode(JSON.stringify(manifest));
    const digest = digestBytes(bytes);
    await this.putManifest(repo, opts.tag ?? digest, bytes, { signal: opts.signal });
    return { digest, bytes };
  }

  /** Streams a blob; the caller verifies its digest. */
  async getBlob(
    repo: string,
    digest: string,
    opts: { signal?: AbortSignal } = {},
  ): Promise<{ stream: ReadableStream<Uint8Array>; size?: number }> {
    const res = await this.request("GET", `/v2/${repo}/blobs/${digest}`, {
      repo,
      ok: [200],
      what: `download blob ${digest} from "${this.host}/${repo}"`,
      signal: opts.signal,
    });
    const len = res.headers.get("content-length");
    return { stream: res.body!, size: len === null ? undefined : Number(len) };
  }

  /** Puts a manifest under `ref` (tag or digest; default an OCI manifest); returns its digest. */
  async putManifest(
    repo: string,
    ref: string,
    bytes: Uint8Array<ArrayBuffer>,
    opts: { mediaType?: string; signal?: AbortSignal } = {},
  ): Promise<string> {
    const res = await this.request("PUT", `/v2/${repo}/manifests/${ref}`, {
      repo,
      ok: [201],
      what: `put manifest "${ref}" in "${this.host}/${repo}"`,
      headers: { "content-type": opts.mediaType ?? MANIFEST_MEDIA_TYPE },
      body: () => bytes,
      signal: opts.signal,
    });
    await res.body?.cancel();
    const digest = digestBytes(bytes);
    const reported = res.headers.get("docker-content-digest");
    if (reported && reported !== digest) {
      throw new RegistryError(
        `Registry "${this.host}" stored manifest "${ref}" as ${reported}, but its digest is ${digest}`,
        201,
      );
    }
    return digest;
  }

  /**
   * Deletes the manifest `digest` (and with it every tag that points at it);
   * returns false when the registry does not have it. The blobs stay until
   * the registry's own garbage collection runs. A registry started without
   * `storage.delete.enabled` answers 405, reported as such.
   */
  async deleteManifest(repo: string, digest: string): Promise<boolean> {
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) {
      throw new RegistryError(`Cannot delete manifest "${digest}": not a sha256 digest`, 0);
    }
    const res = await this.request("DELETE", `/v2/${repo}/manifests/${digest}`, {
      repo,
      actions: "delete",
      ok: [202, 200, 404],
      what: `delete manifest "${digest}" in "${this.host}/${repo}"`,
    });
    await res.body?.cancel();
    return res.status !== 404;
  }

  /**
   * HEADs a manifest by tag or digest: the digest the registry reports (when
   * it does) and the declared size; undefined when the repository lacks it.
   */
  async headManifest(
    repo: string,
    ref: string,
    opts: { signal?: AbortSignal } = {},
  ): Promise<{ digest?: string; size?: number } | undefined> {
    const res = await this.request("HEAD", `/v2/${repo}/manifests/${ref}`, {
      repo,
      actions: "pull",
      ok: [200, 404],
      what: `check manifest "${ref}" in "${this.host}/${repo}"`,
      headers: { accept: MANIFEST_ACCEPT },
      signal: opts.signal,
    });
    await res.body?.cancel();
    if (res.status === 404) return undefined;
    const digest = res.headers.get("docker-content-digest") ?? undefined;
    const len = res.headers.get("content-length");
    return { digest, size: len === null ? undefined : Number(len) };
  }

  /**
   * Gets a manifest by tag or digest and verifies its bytes: against the
   * digest asked for, else against the digest the registry reports.
   */
  async getManifest(
    repo: string,
    ref: string,
  ): Promise<{ bytes: Uint8Array; mediaType: string; digest: string }> {
    const what = `get manifest "${ref}" from "${this.host}/${repo}"`;
    const res = await this.request("GET", `/v2/${repo}/manifests/${ref}`, {
      repo,
      ok: [200],
      what,
      headers: { accept: MANIFEST_ACCEPT },
    });
    // A manifest is read into memory: bounded, whatever Content-Length claims.
    const declared = Number(res.headers.get("content-length") ?? 0);
    if (declared > LIMITS.manifestBytes) {
      await res.body?.cancel();
      throw new RegistryError(
        `Cannot ${what}: the registry declares ${declared} bytes, over the manifest limit ` +
          `${LIMITS.manifestBytes}`,
        200,
        ["SIZE_INVALID"],
      );
    }
    let bytes: Uint8Array;
    try {
      bytes = res.body
        ? await readBounded(
          res.body,
          LIMITS.manifestBytes,
          `manifest "${ref}" from "${this.host}/${repo}"`,
        )
        : new Uint8Array();
    } catch (err) {
      throw new RegistryError(`Cannot ${what}: ${(err as Error).message}`, 200, ["SIZE_INVALID"]);
    }
    const digest = digestBytes(bytes);
    const expected = ref.startsWith("sha256:") ? ref : res.headers.get("docker-content-digest");
    if (expected && expected !== digest) {
      throw new RegistryError(
        `Cannot ${what}: manifest digest mismatch: got ${digest}, expected ${expected}`,
        200,
        ["DIGEST_INVALID"],
      );
    }
    let mediaType = res.headers.get("content-type")?.split(";")[0];
    if (!mediaType) {
      try {
        mediaType = String(JSON.parse(new TextDecoder().decode(bytes)).mediaType ?? "");
      } catch {
        throw new RegistryError(`Cannot ${what}: the manifest is not JSON`, 200, [
          "MANIFEST_INVALID",
        ]);
      }
    }
    return { bytes, mediaType, digest };
  }
}

function parseChallenge(
  header: string | null,
): { scheme: string; params: Record<string, string> } | undefined {
  if (!header) return undefined;
  const m = /^(\w+)\s*(.*)$/.exec(header.trim());
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2].matchAll(/(\w+)="([^"]*)"/g)) params[p[1]] = p[2];
  const scheme = m[1].toLowerCase();
  if (scheme === "bearer" && !params.realm) return undefined;
  return { scheme, params };
}

/** Passes exactly `n` bytes of `stream`, then ends (and cancels the rest). */
function limit(stream: ReadableStream<Uint8Array>, n: number): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  let left = n;
  return new ReadableStream<Uint8Array>({
    async pull(ctl) {
      if (left <= 0) {
        await reader.cancel().catch(() => {});
        ctl.close();
        return;
      }
      const { value, done } = await reader.read();
      if (done) {
        ctl.error(new Error(`Blob source ended ${left} bytes early`));
        return;
      }
      const part = value.length > left ? value.subarray(0, left) : value;
      left -= part.length;
      ctl.enqueue(part);
    },
    cancel: (r) => reader.cancel(r),
  });
}
