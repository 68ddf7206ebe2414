/**
 * Both checkpoint image publishers against the harness registry, through the
 * pipeline: the streamed one (uncompressed layer = the archive, uploaded while
 * the store reads the same file) and the one over `oci/` (gzip layer in an
 * OCI layout). Each pushes by digest only, and the tag appears last; a
 * registry that refuses the upload fails the operation and leaves no stored
 * archive.
 * @module
 */
import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import { envTest, requirePart } from "../testing/env.ts";
import { createLocalStore } from "../storage/mod.ts";
import { runCheckpoint } from "../agent/pipeline.ts";
import { createImagePublisher } from "../agent/image_push.ts";
import { createOciImagePublisher } from "../agent/image_oci.ts";
import { FakeDriver } from "../testing/agent.ts";
import type { ImagePublisher } from "../agent/pipeline.ts";

const ACCEPT = { accept: "application/vnd.oci.image.manifest.v1+json" };

for (
  const [name, publisher, layerType] of [
    ["streamed", createImagePublisher(), "application/vnd.oci.image.layer.v1.tar"],
    ["oci gzip", createOciImagePublisher({ compression: "gzip" }), "+gzip"],
  ] as [string, ImagePublisher, string][]
) {
  envTest({ uses: ["registry"] }, {
    name: `agent image publisher (${name}): by digest during the run, tag last`,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      const r = requirePart("registry");
      const dir = await Deno.makeTempDir({ prefix: "lpm-agent-image-" });
      const repo = `lpm-agent-test/publisher-${crypto.randomUUID().slice(0, 8)}`;
      const tagsSeenDuringRun: string[][] = [];
      try {
        const { result } = await runCheckpoint({
          operationId: "op-image",
          namespace: "ns",
          pod: "pod",
          container: "app",
        }, {
          driver: new FakeDriver(3 * 1024 * 1024),
          resolveClass: () =>
            Promise.resolve({
              name: "local",
              store: createLocalStore({ path: `${dir}/store` }),
              registry: { repository: `${r.host}/${repo}`, insecure: true },
            }),
          images: publisher,
          workDir: `${dir}/work`,
          keptDir: `${dir}/kept`,
          agent: { nodeName: "n", version: "t" },
          report: async (patch) => {
            if (patch.step === "tagging image") {
              const res = await fetch(`http://${r.host}/v2/${repo}/tags/list`);
              tagsSeenDuringRun.push(res.ok ? (await res.json()).tags ?? [] : []);
            }
          },
        });
        assertEquals(tagsSeenDuringRun, [[]], "a tag existed before the last step");
        const m = await fetch(`http://${r.host}/v2/${repo}/manifests/${result.image.digest}`, {
          headers: ACCEPT,
        });
        assertEquals(m.status, 200);
        const manifest = await m.json();
        assert(
          manifest.layers[0].mediaType.endsWith(layerType),
          `layer type ${manifest.layers[0].mediaType}`,
        );
        assertEquals(
          manifest.annotations["io.kubernetes.cri-o.annotations.checkpoint.name"],
          "app",
        );
        const tags = await (await fetch(`http://${r.host}/v2/${repo}/tags/list`)).json();
        assertEquals(tags.tags, [result.image.tag]);
        assertMatch(result.image.reference, new RegExp(`^${r.host}/${repo}@sha256:`));
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

Deno.test({
  name: "agent image publisher: an unreachable registry fails the run and unpublishes the archive",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "lpm-agent-image-" });
    try {
      const store = createLocalStore({ path: `${dir}/store` });
      const err = await assertRejects(() =>
        runCheckpoint({ operationId: "op-bad", namespace: "ns", pod: "pod", container: "app" }, {
          driver: new FakeDriver(1024 * 1024),
          resolveClass: () =>
            Promise.resolve({
              name: "local",
              store,
              // Nothing listens on port 1.
              registry: { repository: "127.0.0.1:1/lpm/none", insecure: true },
            }),
          images: createImagePublisher(),
          workDir: `${dir}/work`,
          keptDir: `${dir}/kept`,
          agent: { nodeName: "n", version: "t" },
          report: () => Promise.resolve(),
        })
      );
      assertMatch((err as Error).message, /Cannot push the checkpoint image: .*unreachable/);
      assertMatch((err as Error).message, /nothing was published, the local archive was removed/);
      for await (const o of store.list("ns/")) throw new Error(`left behind: ${o.key}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
