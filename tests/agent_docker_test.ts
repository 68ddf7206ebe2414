/**
 * The agent end to end on a Docker host through its gRPC API over mutual
 * TLS, with real CRIU (harness dockerd), the harness registry and MinIO: a
 * counter container is checkpointed, the checkpoint image is pulled back from
 * the registry by digest, the archive object in MinIO hashes to the sha256
 * the operation reported, and RestoreContainer brings the counter back in a
 * new container, where it continues above the checkpointed value.
 * @module
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import Docker from "dockerode";
import { GetObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { envTest, requirePart } from "../testing/env.ts";
import { buildBusyboxRootfsTar, counterScript, minioS3Client, waitFor } from "../localenv/mod.ts";
import { createDockerDriver } from "../agent/runtime/docker.ts";
import { readArchiveStats } from "../archive/mod.ts";
import { createImagePublisher } from "../agent/image_push.ts";
import { Sha256Counter, sha256Hex } from "../base/sha256.ts";
import { resolveStorageClass } from "../agent/storage_class.ts";
import {
  clientWith,
  inlineMinioClass,
  makeTestCerts,
  removeObjectsUnder,
  startTestServer,
  type TestCerts,
} from "../testing/agent.ts";
import type { S3Client } from "@aws-sdk/client-s3";
import type { MinioInfo, RegistryInfo } from "../localenv/mod.ts";
import type { AgentServer } from "../agent/server.ts";
import type { AgentClient } from "../contract/client.ts";
import type { OperationMsg, StorageClassRefMsg } from "../contract/proto.ts";

/** A finished checkpoint operation's result, as the client decodes it. */
type OpResult = NonNullable<OperationMsg["result"]>;

async function importBusybox(docker: Docker): Promise<string> {
  const tag = `lpm-agent-test/busybox:${crypto.randomUUID().slice(0, 8)}`;
  const tar = await Deno.makeTempFile({ suffix: ".tar" });
  try {
    await buildBusyboxRootfsTar(tar);
    const [repo, t] = tag.split(":");
    const stream = await docker.importImage(tar, { repo, tag: t });
    await new Promise((res, rej) =>
      docker.modem.followProgress(stream, (e: unknown) => e ? rej(e) : res(null))
    );
  } finally {
    await Deno.remove(tar).catch(() => {});
  }
  return tag;
}

/** The numbers a container printed (Docker's multiplexed log frames). */
async function numbers(c: Docker.Container): Promise<number[]> {
  const buf = await c.logs({ stdout: true, stderr: false, follow: false }) as unknown as Uint8Array;
  let text = "";
  for (let i = 0; i + 8 <= buf.length;) {
    const len = (buf[i + 4] << 24) | (buf[i + 5] << 16) | (buf[i + 6] << 8) | buf[i + 7];
    text += new TextDecoder().decode(buf.subarray(i + 8, i + 8 + len));
    i += 8 + len;
  }
  return text.split("\n").map((l) => l.trim()).filter((l) => /^\d+$/.test(l)).map(Number);
}

/** What the test's steps share: the parts, names, the agent and a client of it. */
interface Ctx {
  docker: Docker;
  m: MinioInfo;
  r: RegistryInfo;
  s3: S3Client;
  suffix: string;
  prefix: string;
  name: string;
  restoredName: string;
  certs: TestCerts;
  stateDir: string;
  image: string;
  storageClass: StorageClassRefMsg;
  server: AgentServer;
  c: AgentClient;
}

async function setUp(): Promise<Ctx> {
  const d = requirePart("docker");
  const m = requirePart("minio");
  const r = requirePart("registry");
  const docker = new Docker({ socketPath: d.socketPath });
  const suffix = crypto.randomUUID().slice(0, 8);
  const prefix = `agent-docker-${suffix}`;
  const name = `lpm-agent-counter-${suffix}`;
  const certs = await makeTestCerts();
  const stateDir = await Deno.makeTempDir({ prefix: "lpm-agent-state-" });
  const s3 = minioS3Client(m);
  const image = await importBusybox(docker);
  const storageClass = inlineMinioClass("agent-docker-test", {
    minio: m,
    prefix,
    repository: `${r.host}/lpm-agent-test/docker`,
  });
  const { server, address } = await startTestServer(certs, {
    nodeName: "docker-host",
    stateDir,
    driver: createDockerDriver({ socketPath: d.socketPath, execRoot: d.execRoot }),
    images: createImagePublisher(),
    readStats: readArchiveStats,
    // These agents run without cluster access to classes: inline specs, as on a Docker host.
    resolveClass: (ref) => resolveStorageClass(ref, { allowInline: true }),
  });
  const c = await clientWith(address, certs.controller);
  return {
    docker,
    m,
    r,
    s3,
    suffix,
    prefix,
    name,
    restoredName: `${name}-restored`,
    certs,
    stateDir,
    image,
    storageClass,
    server,
    c,
  };
}

/**
 * Checkpoints a running counter through the agent (not leaving it running);
 * returns the operation's result and the last value the counter printed.
 */
async function checkpointCounter(
  { docker, c, suffix, name, image, storageClass }: Ctx,
): Promise<{ res: OpResult; checkpointed: number }> {
  const counter = await docker.createContainer({
    name,
    Image: image,
    Cmd: ["sh", "-c", counterScript(0.1)],
    HostConfig: { NetworkMode: "none" },
  });
  await counter.start();
  await waitFor(async () => (await numbers(counter)).length >= 5, {
    what: "5 counter values",
    timeoutMs: 30_000,
  });

  const opId = `docker-${suffix}`;
  await c.checkpoint({
    operationId: opId,
    namespace: "docker",
    pod: name,
    container: "counter",
    containerRef: name,
    storageClass,
    leaveRunning: false,
  });
  let last;
  for await (const op of c.watchOperation(opId)) last = op;
  assertEquals(last?.phase, "Succeeded", last?.message);
  const res = last!.result!;
  assertEquals(res.runtime!.name, "docker");
  // The Docker driver captures CRIU's stats-dump best effort (see docker.ts); when it did,
  // the operation carries them.
  if (res.criuStats && Object.keys(res.criuStats).length) {
    assert((res.criuStats.frozenTime ?? 0) > 0, `CRIU stats: ${JSON.stringify(res.criuStats)}`);
  }
  const checkpointed = Math.max(...await numbers(counter));
  assertEquals((await counter.inspect()).State.Running, false, "the source kept running");
  return { res, checkpointed };
}

/** The image, pulled back by digest: its manifest and its one layer hash as reported. */
async function assertImageByDigest({ r }: Ctx, res: OpResult): Promise<void> {
  const manifestRes = await fetch(
    `http://${r.host}/v2/lpm-agent-test/docker/manifests/${res.image!.digest}`,
    { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } },
  );
  assertEquals(manifestRes.status, 200);
  const manifestBytes = new Uint8Array(await manifestRes.arrayBuffer());
  assertEquals(
    `sha256:${sha256Hex(manifestBytes)}`,
    res.image!.digest,
  );
  const manifest = JSON.parse(new TextDecoder().decode(manifestBytes));
  assertEquals(manifest.layers[0].digest, `sha256:${res.archive!.sha256}`);
  const layer = await fetch(
    `http://${r.host}/v2/lpm-agent-test/docker/blobs/${manifest.layers[0].digest}`,
  );
  assertEquals(
    sha256Hex(new Uint8Array(await layer.arrayBuffer())),
    res.archive!.sha256,
  );
}

/** The archive object in MinIO, read back and hashed (the store's own layout). */
async function assertArchiveInMinio({ s3, m, prefix }: Ctx, res: OpResult) {
  const objs = await s3.send(new ListObjectsV2Command({ Bucket: m.bucket, Prefix: prefix }));
  const sizes = (objs.Contents ?? []).map((o) => o.Size);
  assert(
    sizes.includes(res.archive!.size),
    `no object of ${res.archive!.size} bytes: ${sizes}`,
  );
  const big = objs.Contents!.find((o) => o.Size === res.archive!.size)!;
  const body = await s3.send(new GetObjectCommand({ Bucket: m.bucket, Key: big.Key! }));
  const h = new Sha256Counter();
  for await (const chunk of body.Body as AsyncIterable<Uint8Array>) h.update(chunk);
  assertEquals(h.hex(), res.archive!.sha256);
}

/** RestoreContainer: a new container continues the count. */
async function assertRestoreContinues(
  { docker, c, suffix, storageClass, restoredName }: Ctx,
  res: OpResult,
  checkpointed: number,
): Promise<void> {
  await c.restoreContainer({
    operationId: `restore-${suffix}`,
    storageClass,
    archiveKey: res.archive!.key,
    name: restoredName,
  });
  let restoredOp;
  for await (const op of c.watchOperation(`restore-${suffix}`)) restoredOp = op;
  assertEquals(restoredOp?.phase, "Succeeded", restoredOp?.message);
  const restored = docker.getContainer(restoredOp!.restore!.containerId);
  let values: number[] = [];
  await waitFor(async () => {
    values = await numbers(restored);
    return values.some((v) => v > checkpointed + 2);
  }, { what: "the restored counter to count on", timeoutMs: 30_000 });
  const firstNew = values.find((v) => v > checkpointed);
  assertEquals(firstNew, checkpointed + 1, `restored values: ${values.slice(0, 10)}`);
  assertMatch((await restored.inspect()).Name, new RegExp(restoredName));
}

async function cleanUp(ctx: Ctx): Promise<void> {
  const { docker, s3, m, prefix } = ctx;
  ctx.c.close();
  await ctx.server.close();
  for (const n of [ctx.name, ctx.restoredName]) {
    await docker.getContainer(n).remove({ force: true }).catch(() => {});
  }
  await docker.getImage(ctx.image).remove({ force: true }).catch(() => {});
  await removeObjectsUnder(s3, { bucket: m.bucket, prefix });
  s3.destroy();
  for (const dir of [ctx.certs.dir, ctx.stateDir]) await Deno.remove(dir, { recursive: true });
}

envTest({ uses: ["docker", "minio", "registry"] }, {
  name: "agent docker driver: checkpoint a counter via gRPC+mTLS -> registry + MinIO, " +
    "RestoreContainer continues the count",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const ctx = await setUp();
    try {
      const { res, checkpointed } = await checkpointCounter(ctx);
      await assertImageByDigest(ctx, res);
      await assertArchiveInMinio(ctx, res);
      await assertRestoreContinues(ctx, res, checkpointed);
    } finally {
      await cleanUp(ctx);
    }
  },
});
