/**
 * Smoke test: the registry is a real distribution-API server. A small image
 * (one layer, a config, a manifest) pushed with plain HTTP calls pulls back
 * by digest with identical bytes.
 */
import { assertEquals } from "@std/assert";
import { needing, requirePart } from "../testing/env.ts";
import { sha256Hex } from "../base/sha256.ts";

const test = needing({ uses: ["registry"] });

const enc = new TextEncoder();

function digestOf(data: Uint8Array): string {
  return `sha256:${sha256Hex(data)}`;
}

async function pushBlob(base: string, repo: string, data: Uint8Array): Promise<string> {
  const digest = digestOf(data);
  const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  await start.body?.cancel();
  assertEquals(start.status, 202);
  const loc = new URL(start.headers.get("location")!, base);
  loc.searchParams.set("digest", digest);
  const put = await fetch(loc, {
    method: "PUT",
    body: data as Uint8Array<ArrayBuffer>,
    headers: { "content-type": "application/octet-stream" },
  });
  await put.body?.cancel();
  assertEquals(put.status, 201, `blob upload of ${digest}`);
  return digest;
}

test("registry: a small image pushed by tag pulls back by digest", async () => {
  const { host } = requirePart("registry");
  const base = `http://${host}`;
  const repo = `smoke/img-${crypto.randomUUID().slice(0, 8)}`;
  const layer = crypto.getRandomValues(new Uint8Array(4096));
  const layerDigest = await pushBlob(base, repo, layer);
  const config = enc.encode(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      rootfs: { type: "layers", diff_ids: [layerDigest] },
    }),
  );
  const configDigest = await pushBlob(base, repo, config);
  const manifest = enc.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: configDigest,
      size: config.length,
    },
    layers: [{
      mediaType: "application/vnd.oci.image.layer.v1.tar",
      digest: layerDigest,
      size: layer.length,
    }],
  }));
  const manifestDigest = digestOf(manifest);
  const put = await fetch(`${base}/v2/${repo}/manifests/v1`, {
    method: "PUT",
    body: manifest,
    headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" },
  });
  await put.body?.cancel();
  assertEquals(put.status, 201);
  assertEquals(put.headers.get("docker-content-digest"), manifestDigest);

  const got = await fetch(`${base}/v2/${repo}/manifests/${manifestDigest}`, {
    headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
  });
  const gotBytes = new Uint8Array(await got.arrayBuffer());
  assertEquals(digestOf(gotBytes), manifestDigest);
  const blob = await fetch(`${base}/v2/${repo}/blobs/${layerDigest}`);
  assertEquals(digestOf(new Uint8Array(await blob.arrayBuffer())), layerDigest);
});
