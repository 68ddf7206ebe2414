import { assert, assertEquals, assertRejects } from "@std/assert";
import { digestBytes } from "../oci/mod.ts";
import { serveOnLoopback } from "./image_loopback.ts";

const enc = (s: string) => new TextEncoder().encode(s);

function image(layer: () => ReadableStream<Uint8Array>, size: number) {
  const manifest = enc('{"schemaVersion":2}');
  const config = enc('{"rootfs":{}}');
  return {
    manifest: { digest: digestBytes(manifest), bytes: manifest },
    config: { digest: digestBytes(config), bytes: config },
    layer: { digest: `sha256:${"ab".repeat(32)}`, size, open: () => Promise.resolve(layer()) },
  };
}

Deno.test("loopback registry: serves its one image under its random name only", async () => {
  const img = image(() => ReadableStream.from([enc("hello "), enc("world")]), 11);
  const served = serveOnLoopback(img);
  try {
    const [hostPort, rest] = [served.reference.split("/")[0], served.reference.split("/")[1]];
    assert(hostPort.startsWith("127.0.0.1:"), served.reference);
    const name = rest.split("@")[0];
    assert(/^lpm-[0-9a-f]{32}$/.test(name), name);
    const get = async (path: string, method = "GET") => {
      const res = await fetch(`http://${hostPort}${path}`, { method });
      return { status: res.status, body: await res.text(), headers: res.headers };
    };
    assertEquals((await get("/v2/")).status, 200);
    const m = await get(`/v2/${name}/manifests/${img.manifest.digest}`);
    assertEquals([m.status, m.body], [200, '{"schemaVersion":2}']);
    assertEquals(m.headers.get("docker-content-digest"), img.manifest.digest);
    assertEquals((await get(`/v2/${name}/blobs/${img.config.digest}`)).body, '{"rootfs":{}}');
    const head = await get(`/v2/${name}/blobs/${img.layer.digest}`, "HEAD");
    assertEquals(head.headers.get("content-length"), "11");
    assertEquals((await get(`/v2/${name}/blobs/${img.layer.digest}`)).body, "hello world");
    // Another name, another digest, a write: nothing.
    assertEquals((await get(`/v2/lpm-${"0".repeat(32)}/blobs/${img.config.digest}`)).status, 404);
    assertEquals((await get(`/v2/${name}/blobs/sha256:${"cd".repeat(32)}`)).status, 404);
    assertEquals((await get(`/v2/${name}/blobs/uploads/`, "POST")).status, 405);
    assertEquals(served.failure(), undefined);
  } finally {
    await served.close();
  }
});

Deno.test("loopback registry: a layer that fails mid-way breaks the response and is kept", async () => {
  let sent = 0;
  const failing = () =>
    new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent++ === 2) throw new Error("chunk 2 fails authentication");
        c.enqueue(new Uint8Array(1000));
      },
    });
  const img = image(failing, 5000);
  const served = serveOnLoopback(img);
  try {
    const [hostPort, rest] = served.reference.split("/");
    const res = await fetch(
      `http://${hostPort}/v2/${rest.split("@")[0]}/blobs/${img.layer.digest}`,
    );
    assertEquals(res.status, 200);
    // The reader never gets the whole layer: the body ends in an error.
    await assertRejects(() => res.arrayBuffer());
    assertEquals((served.failure() as Error).message, "chunk 2 fails authentication");
  } finally {
    await served.close();
  }
});
