/**
 * A minimal OCI image push over the registry HTTP API, for the harness's own
 * images (pause, busybox workload) and for tests that turn a checkpoint
 * archive into an image. Layers are uncompressed tars read whole into memory:
 * fine for the few MiB these images weigh, not a general-purpose client.
 * @module
 */

/** One layer: an uncompressed tar file. */
export interface LayerFile {
  /** Path of the tar. */
  path: string;
}

/** Options for {@linkcode pushImage}. */
export interface PushImageOptions {
  /** Layers, lowest first. */
  layers: LayerFile[];
  /** Image config `config` section (Entrypoint, Cmd, Env, WorkingDir...). */
  config?: Record<string, unknown>;
  /** Annotations on the manifest (e.g. the checkpoint-image annotation). */
  annotations?: Record<string, string>;
}

/** A pushed image. */
export interface PushedImage {
  /** `host/repository:tag`. */
  reference: string;
  /** `host/repository@sha256:...`. */
  digestReference: string;
  /** Manifest digest. */
  digest: string;
}

async function sha256(data: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", data as BufferSource));
  return "sha256:" + Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function pushBlob(base: string, repo: string, data: Uint8Array): Promise<string> {
  const digest = await sha256(data);
  const head = await fetch(`${base}/v2/${repo}/blobs/${digest}`, { method: "HEAD" });
  await head.body?.cancel();
  if (head.ok) return digest;
  const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  await start.body?.cancel();
  const location = start.headers.get("location");
  if (start.status !== 202 || !location) {
    throw new Error(`Cannot start a blob upload to "${base}/v2/${repo}": HTTP ${start.status}`);
  }
  const url = new URL(location, base);
  url.searchParams.set("digest", digest);
  const put = await fetch(url, {
    method: "PUT",
    headers: { "content-type": "application/octet-stream" },
    body: data as BodyInit,
  });
  const text = await put.text();
  if (put.status !== 201) {
    throw new Error(`Cannot upload blob "${digest}" to "${repo}": HTTP ${put.status} ${text}`);
  }
  return digest;
}

/** Pushes an image made of `opts.layers` as `host/repository:tag` (plain HTTP). */
export async function pushImage(
  host: string,
  repositoryTag: string,
  opts: PushImageOptions,
): Promise<PushedImage> {
  const [repo, tag = "latest"] = repositoryTag.split(":");
  const base = `http://${host}`;
  const layers = [];
  for (const l of opts.layers) {
    const data = await Deno.readFile(l.path);
    const digest = await pushBlob(base, repo, data);
    layers.push({ mediaType: "application/vnd.oci.image.layer.v1.tar", digest, size: data.length });
  }
  const config = new TextEncoder().encode(JSON.stringify({
    created: new Date().toISOString(),
    architecture: "amd64",
    os: "linux",
    config: opts.config ?? {},
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) },
    history: layers.map(() => ({ created_by: "lpm test harness" })),
  }));
  const configDigest = await pushBlob(base, repo, config);
  const manifest = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: configDigest,
      size: config.length,
    },
    layers,
    ...(opts.annotations ? { annotations: opts.annotations } : {}),
  }));
  const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, {
    method: "PUT",
    headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" },
    body: manifest as BodyInit,
  });
  const text = await res.text();
  if (res.status !== 201) {
    throw new Error(
      `Cannot push manifest "${repositoryTag}" to "${host}": HTTP ${res.status} ${text}`,
    );
  }
  const digest = await sha256(manifest);
  return {
    reference: `${host}/${repo}:${tag}`,
    digestReference: `${host}/${repo}@${digest}`,
    digest,
  };
}
