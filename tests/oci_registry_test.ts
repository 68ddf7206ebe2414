/**
 * OCI checkpoint images against the harness registry and real tools: a
 * Docker+CRIU checkpoint is packed, pushed, inspected by skopeo, pulled into
 * a fresh directory, read by checkpointctl, byte-compared, and restored
 * into a new container that keeps counting. Plus chunked upload, blob mount
 * and compression variants.
 */
import type Docker from "dockerode";
import { assert, assertEquals, assertGreater, assertStringIncludes } from "@std/assert";
import { envTest, requirePart } from "../testing/env.ts";
import { tool } from "../localenv/mod.ts";
import { createDockerDriver } from "../agent/runtime/docker.ts";
import {
  buildCheckpointImage,
  CRIO,
  CRIU,
  digestFile,
  extractCheckpointArchive,
  LPM,
  pullImage,
  pushImage,
  RegistryClient,
} from "../oci/mod.ts";
import { importBusybox, logNumbers, runTool, startCounter } from "../testing/docker.ts";
import { syntheticArchive } from "../testing/archives.ts";

envTest({ uses: ["registry", "docker"] }, {
  name:
    "oci: Docker checkpoint -> image -> registry -> fresh pull -> restore continues the counter",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { host } = requirePart("registry");
    const dinfo = requirePart("docker");
    const driver = createDockerDriver({ socketPath: dinfo.socketPath, execRoot: dinfo.execRoot });
    const docker = driver.docker;
    const image = await importBusybox(docker);
    const id = crypto.randomUUID().slice(0, 8);
    const work = await Deno.makeTempDir({ prefix: "lpm-oci-e2e-" });
    const containers: Docker.Container[] = [];
    try {
      const src = await startCounter(docker, image, { name: `lpm-oci-src-${id}` });
      containers.push(src);
      await new Promise((r) => setTimeout(r, 1500));
      const cp = await driver.checkpoint(
        { namespace: "default", pod: "counter", container: "counter", id: src.id },
        { workDir: `${work}/cp` },
      );
      const last = (await logNumbers(src)).at(-1)!;
      assertGreater(last, 3);

      const img = await buildCheckpointImage(cp.archivePath, {
        containerName: "counter",
        layoutDir: `${work}/layout`,
        source: { pod: "counter", namespace: "default", node: "node-a" },
        runtime: cp.runtime,
      });
      const target = `${host}/lpm-test/counter-${id}:cp1`;
      const pushed = await pushImage(img, target, { insecure: true });
      assertEquals(pushed.digest, img.manifest.digest);
      assertEquals(pushed.reference, `${host}/lpm-test/counter-${id}@${img.manifest.digest}`);

      // skopeo (not ours) sees the annotations on the manifest and the labels on the config.
      const raw = JSON.parse(
        await runTool("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${target}`]),
      );
      assertEquals(raw.annotations[CRIO.name], "counter");
      assertEquals(raw.annotations[CRIU.name], "counter");
      assertEquals(raw.annotations[CRIO.rootfsImageName], image);
      assertEquals(raw.annotations[LPM.sourceNode], "node-a");
      assertEquals(raw.annotations[LPM.compression], "gzip");
      assertEquals(
        `sha256:${raw.annotations[LPM.archiveSha256]}`,
        (await digestFile(cp.archivePath)).digest,
      );
      const inspect = JSON.parse(
        await runTool("skopeo", ["inspect", "--tls-verify=false", `docker://${target}`]),
      );
      assertEquals(inspect.Digest, img.manifest.digest);
      assertEquals(inspect.Labels[CRIO.name], "counter");
      assertEquals(inspect.Labels[LPM.sourcePod], "counter");

      // Pull into a fresh directory and get the same archive back.
      const pulled = await pullImage(target, `${work}/pulled`, { insecure: true });
      assertEquals(pulled.digest, img.manifest.digest);
      const back = `${work}/back.tar`;
      const ex = await extractCheckpointArchive(pulled.layoutDir, back, { ref: pulled.refName });
      assertEquals(ex.archiveDigest, img.archiveDigest);
      await runTool("cmp", [cp.archivePath, back]);

      // checkpointctl reads the pulled archive.
      const show = await runTool(tool("checkpointctl"), ["show", back]);
      assertStringIncludes(show, image);
      const insp = await runTool(tool("checkpointctl"), ["inspect", "--stats", back]);
      assertStringIncludes(insp, "Pages written");

      // Restore the pulled archive into a NEW container.
      await Deno.remove(cp.archivePath);
      const { containerId } = await driver.restore(back, { name: `lpm-oci-dst-${id}` });
      const dst = docker.getContainer(containerId);
      containers.push(dst);
      await new Promise((r) => setTimeout(r, 1500));
      const after = await logNumbers(dst);
      assert(after.length > 0, "restored counter printed nothing");
      assertGreater(after[0], last, `counter restarted: before ${last}, after ${after}`);
      assertGreater(after.at(-1)!, after[0]);
    } finally {
      for (const c of containers) await c.remove({ force: true }).catch(() => {});
      await docker.getImage(image).remove({ force: true }).catch(() => {});
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  },
});

envTest({ uses: ["registry"] }, {
  name: "oci: chunked resumable upload, cross-repository mount, none/zstd layers round trip",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { host } = requirePart("registry");
    const id = crypto.randomUUID().slice(0, 8);
    const work = await Deno.makeTempDir({ prefix: "lpm-oci-chunks-" });
    try {
      const archive = await syntheticArchive(work, { pagesMib: 9 });
      const want = (await digestFile(archive)).digest;
      for (const compression of ["none", "zstd"] as const) {
        const img = await buildCheckpointImage(archive, {
          layoutDir: `${work}/layout-${compression}`,
          compression,
        });
        assertEquals(img.archiveDigest, want);
        const repo = `${host}/lpm-test/chunks-${id}`;
        const res = await pushImage(img, `${repo}:${compression}`, {
          insecure: true,
          chunkSize: 2 * 1024 * 1024,
        });
        assertGreater(res.uploadedBytes, 0);
        const pulled = await pullImage(`${repo}@${res.digest}`, `${work}/pulled-${compression}`, {
          insecure: true,
        });
        const back = `${work}/back-${compression}.tar`;
        await extractCheckpointArchive(pulled.layoutDir, back);
        await runTool("cmp", [archive, back]);
        // Same registry, other repository: blobs are mounted, not uploaded again.
        const mounted = await pushImage(img, `${host}/lpm-test/mounted-${id}:${compression}`, {
          insecure: true,
          mountFrom: `lpm-test/chunks-${id}`,
        });
        assertEquals(mounted.uploadedBytes, 0);
        assertEquals(mounted.digest, res.digest);
      }
      // A resumed session: the registry reports how much it holds.
      const client = new RegistryClient(host, { insecure: true });
      try {
        await client.ping();
        assertEquals(await client.blobSize("lpm-test/none-such", want), undefined);
      } finally {
        client.close();
      }
    } finally {
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  },
});
