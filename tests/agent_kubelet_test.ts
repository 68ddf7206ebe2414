/**
 * The agent's kubelet driver end to end on the harness's real nodes
 * (kubelet 1.34 + containerd 2.2): a counter on node-a is checkpointed through
 * the agent's gRPC API over mutual TLS (the driver goes through the API
 * server's node proxy), the archive lands in MinIO with the sha256 the
 * operation reported, the checkpoint image is in the registry by digest and
 * by tag, the kubelet's node-local archive is removed, PrepareRestore on
 * node-b finds the image, and a pod on node-b started from it continues the
 * count. A second test kills an agent process (SIGKILL) mid-checkpoint.
 * @module
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { envTest, requirePart, testEnv } from "../testing/env.ts";
import { counterScript, kubectl, minioS3Client, waitFor } from "../localenv/mod.ts";
import type { NodeInfo } from "../localenv/mod.ts";
import { ctr } from "../localenv/containerd.ts";
import { kubeHttp, loadKubeConfig } from "../kube/config.ts";
import { createImagePublisher } from "../agent/image_push.ts";
import { createKubeletDriver } from "../agent/runtime/kubelet.ts";
import { Sha256Counter } from "../base/sha256.ts";
import { resolveStorageClass } from "../agent/storage_class.ts";
import { prepareImage } from "../agent/prepare.ts";
import { readArchiveStats } from "../archive/mod.ts";
import {
  clientWith,
  inlineMinioClass,
  makeTestCerts,
  removeObjectsUnder,
  startTestServer,
  type TestCerts,
} from "../testing/agent.ts";
import type { AgentClient } from "../contract/client.ts";
import type { OperationMsg } from "../contract/proto.ts";
import type { AgentServer } from "../agent/server.ts";
import type { KubeHttp } from "../kube/config.ts";
import type { RegistryInfo } from "../localenv/mod.ts";
import type { S3Client } from "@aws-sdk/client-s3";

type OpResult = NonNullable<OperationMsg["result"]>;
type OpArchive = NonNullable<OpResult["archive"]>;
type OpImage = NonNullable<OpResult["image"]>;

const REPO = new URL("../", import.meta.url).pathname;

function requireNodes(count: number): { nodes: NodeInfo[]; busybox: string } {
  const env = testEnv();
  if (!env.nodes || env.nodes.length < count || !env.nodeImages) {
    throw new Error(
      `This test needs ${count} real nodes, the environment has ${env.nodes?.length ?? 0}: ` +
        `run it with "deno task test" (which starts 2) or "deno task cluster:up --nodes 2"`,
    );
  }
  return { nodes: env.nodes, busybox: env.nodeImages.busybox };
}

/** The inline class (spec + credentials) for the harness MinIO and registry. */
function minioClass(prefix: string) {
  return inlineMinioClass("agent-test-minio", {
    minio: requirePart("minio"),
    prefix,
    repository: `${requirePart("registry").host}/lpm-agent-test/checkpoints`,
  });
}

/** Creates a namespace and waits for its default ServiceAccount (pods need it). */
async function createNamespace(kc: string, ns: string): Promise<void> {
  await kubectl(kc, ["create", "namespace", ns]);
  await waitFor(
    () => kubectl(kc, ["-n", ns, "get", "serviceaccount", "default"]).then(() => true, () => false),
    { what: `the default ServiceAccount of "${ns}"`, timeoutMs: 30_000, intervalMs: 200 },
  );
}

async function counterPod(kc: string, ns: string, name: string, node: string, image: string) {
  await kubectl(
    kc,
    ["apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: ns },
      spec: {
        nodeName: node,
        automountServiceAccountToken: false,
        terminationGracePeriodSeconds: 0,
        restartPolicy: "Never",
        containers: [{
          name: "counter",
          image,
          ...(image.includes("@sha256") ? {} : { command: ["/bin/sh", "-c", counterScript(0.2)] }),
        }],
      },
    }),
  );
  await waitFor(async () => {
    const p = JSON.parse(await kubectl(kc, ["-n", ns, "get", "pod", name, "-o", "json"]));
    return p.status?.containerStatuses?.[0]?.state?.running !== undefined;
  }, { what: `pod "${ns}/${name}" running`, timeoutMs: 90_000, intervalMs: 300 });
}

async function counterValues(kc: string, ns: string, pod: string): Promise<number[]> {
  const out = await kubectl(kc, ["-n", ns, "logs", pod]);
  return out.split("\n").map(Number).filter((n) => Number.isFinite(n) && n > 0);
}

async function watchToEnd(c: AgentClient, id: string) {
  let last;
  const steps = new Set<string>();
  for await (const op of c.watchOperation(id)) {
    steps.add(op.step);
    last = op;
  }
  return { last: last!, steps };
}

/** What the first test's steps share: names, the agent, a client of it and MinIO. */
interface KubeletCtx {
  a: NodeInfo;
  b: NodeInfo;
  kc: string;
  r: RegistryInfo;
  suffix: string;
  ns: string;
  prefix: string;
  certs: TestCerts;
  stateDir: string;
  http: KubeHttp;
  s3: S3Client;
  server: AgentServer;
  c: AgentClient;
}

/** The agent on node-a (kubelet driver through the API server's node proxy), serving mTLS. */
async function setUpKubeletAgent(): Promise<KubeletCtx> {
  const kube = requirePart("kube");
  const r = requirePart("registry");
  const [a, b] = requireNodes(2).nodes;
  const kc = kube.kubeconfig;
  const suffix = crypto.randomUUID().slice(0, 8);
  const ns = `lpm-agent-${suffix}`;
  const prefix = `agent-kubelet-${suffix}`;
  const certs = await makeTestCerts();
  const stateDir = await Deno.makeTempDir({ prefix: "lpm-agent-state-" });
  const http = kubeHttp(loadKubeConfig(kc));
  const s3 = minioS3Client(requirePart("minio"));
  await createNamespace(kc, ns);
  const { server, address } = await startTestServer(certs, {
    nodeName: a.name,
    stateDir,
    driver: createKubeletDriver({
      nodeName: a.name,
      access: { mode: "proxy", kube: http },
      kubeletRootDir: a.rootDir,
      runtimeVersion: "containerd://2.2",
    }),
    images: createImagePublisher(),
    readStats: readArchiveStats,
    // These agents run without cluster access to classes: inline specs, as on a Docker host.
    resolveClass: (ref) => resolveStorageClass(ref, { allowInline: true }),
    // This test's one agent pre-pulls for node-b: through node-b's CRI socket.
    prepareImage: (req, signal) =>
      prepareImage(req, { signal, runtimeEndpoint: `unix://${b.containerdSocket}` }),
  });
  const c = await clientWith(address, certs.controller);
  return { a, b, kc, r, suffix, ns, prefix, certs, stateDir, http, s3, server, c };
}

/** Checkpoints the counter on node-a, leaving it running; returns the finished operation. */
async function checkpointOnNodeA(
  { c, ns, prefix }: KubeletCtx,
  opId: string,
): Promise<OperationMsg> {
  const started = await c.checkpoint({
    operationId: opId,
    namespace: ns,
    pod: "counter",
    container: "counter",
    storageClass: minioClass(prefix),
    leaveRunning: true,
    podJson: JSON.stringify({ metadata: { name: "counter", namespace: ns } }),
  });
  assert(["Pending", "Running"].includes(started.phase), started.phase);
  const { last, steps } = await watchToEnd(c, opId);
  assertEquals(last.phase, "Succeeded", last.message);
  for (const s of ["checkpointing", "storing archive and pushing image", "tagging image"]) {
    assert(steps.has(s), `step "${s}" was not reported: ${[...steps]}`);
  }
  const archive = last.result!.archive!;
  assertEquals(archive.key, `${ns}/counter/${opId}/counter.tar`);
  assertEquals(last.result!.runtime!.name, "containerd");
  const stats = last.result!.criuStats ?? {};
  assert((stats.frozenTime ?? 0) > 0, `CRIU stats from the archive: ${JSON.stringify(stats)}`);
  return last;
}

/** The archive in MinIO hashes to what the operation reported; its metadata names node-a. */
async function assertArchiveStored(
  { a, s3, ns, prefix }: KubeletCtx,
  opId: string,
  archive: OpArchive,
): Promise<void> {
  const m = requirePart("minio");
  const objs = await s3.send(new ListObjectsV2Command({ Bucket: m.bucket, Prefix: prefix }));
  assert((objs.Contents ?? []).length > 0, "nothing in MinIO under the class prefix");
  const { createStore } = await import("../storage/mod.ts");
  const store = createStore(JSON.parse(minioClass(prefix).specJson), {
    secret: minioClass(prefix).credentials,
  });
  const h = new Sha256Counter();
  let n = 0;
  for await (const chunk of await store.get(archive.key)) {
    h.update(chunk);
    n += chunk.length;
  }
  assertEquals(h.hex(), archive.sha256);
  assertEquals(n, archive.size);
  const meta = JSON.parse(
    new TextDecoder().decode(
      await new Response(await store.get(`${ns}/counter/${opId}/counter.checkpoint.json`))
        .arrayBuffer(),
    ),
  );
  assertEquals(meta.archive.sha256, archive.sha256);
  assertEquals(meta.node, a.name);
  assertEquals(meta.sourcePod.metadata.name, "counter");
  store.close?.();
}

/** The image by digest and by tag. */
async function assertImagePushed({ r }: KubeletCtx, image: OpImage, archive: OpArchive) {
  assertMatch(image.reference, new RegExp(`^${r.host}/lpm-agent-test/checkpoints@sha256:`));
  const byDigest = await fetch(
    `http://${r.host}/v2/lpm-agent-test/checkpoints/manifests/${image.digest}`,
    { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } },
  );
  const manifest = await byDigest.json();
  assertEquals(byDigest.status, 200);
  assertEquals(manifest.layers[0].digest, `sha256:${archive.sha256}`);
  assertEquals(
    manifest.annotations["io.kubernetes.cri-o.annotations.checkpoint.name"],
    "counter",
  );
  const byTag = await fetch(
    `http://${r.host}/v2/lpm-agent-test/checkpoints/manifests/${image.tag}`,
    { method: "HEAD", headers: { accept: "application/vnd.oci.image.manifest.v1+json" } },
  );
  assertEquals(byTag.headers.get("docker-content-digest"), image.digest);
}

/**
 * PrepareRestore for node-b pulls the image into node-b's runtime (where
 * the kubelet will find it); a bogus digest fails clearly.
 */
async function assertPrepareRestore({ b, c, r, suffix }: KubeletCtx, image: OpImage) {
  const listed = () => ctr(b.containerdSocket, ["images", "ls", "-q"]);
  assert(!(await listed()).includes(image.digest), "the image was on node-b already");
  const prep = await c.prepareRestore({
    operationId: `prep-${suffix}`,
    image: image.reference,
    insecure: true,
  });
  assert(prep.id);
  const p1 = await watchToEnd(c, `prep-${suffix}`);
  assertEquals(p1.last.phase, "Succeeded", p1.last.message);
  assertStringIncludes(await listed(), image.reference, "not pulled into node-b's runtime");
  await c.prepareRestore({
    operationId: `prep-bad-${suffix}`,
    image: `${r.host}/lpm-agent-test/checkpoints@sha256:${"0".repeat(64)}`,
    insecure: true,
  });
  const p2 = await watchToEnd(c, `prep-bad-${suffix}`);
  assertEquals(p2.last.phase, "Failed");
  assertMatch(p2.last.message, /is not available: the registry answered 404/);
}

/** The image restores on node-b and the count continues. */
async function assertRestoresOnNodeB({ b, kc, ns }: KubeletCtx, image: OpImage) {
  const checkpointed = Math.max(...await counterValues(kc, ns, "counter"));
  await counterPod(kc, ns, "restored", b.name, image.reference);
  let restored: number[] = [];
  await waitFor(async () => {
    restored = await counterValues(kc, ns, "restored");
    return restored.some((v) => v > checkpointed);
  }, { what: "the restored counter to pass the checkpointed value", timeoutMs: 30_000 });
  const resumedFrom = restored.find((v) => v > checkpointed - 50 && v <= checkpointed + 5);
  assert(resumedFrom !== undefined, `restored values ${restored.slice(-5)} do not continue`);
}

async function cleanUpKubeletAgent(ctx: KubeletCtx): Promise<void> {
  const { kc, ns, s3, prefix } = ctx;
  ctx.c.close();
  await ctx.server.close();
  ctx.http.close();
  await kubectl(kc, ["delete", "namespace", ns, "--wait=false"]).catch(() => {});
  await removeObjectsUnder(s3, { bucket: requirePart("minio").bucket, prefix });
  s3.destroy();
  for (const d of [ctx.certs.dir, ctx.stateDir]) await Deno.remove(d, { recursive: true });
}

envTest({ uses: ["kube", "minio", "registry", "nodes"] }, {
  name: "agent kubelet driver: checkpoint on real node-a via gRPC+mTLS, MinIO + registry, " +
    "restore on node-b continues",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { busybox } = requireNodes(2);
    const ctx = await setUpKubeletAgent();
    const { a, kc, ns, suffix } = ctx;
    try {
      await counterPod(kc, ns, "counter", a.name, busybox);
      await waitFor(async () => (await counterValues(kc, ns, "counter")).length >= 5, {
        what: "5 counter values",
        timeoutMs: 30_000,
      });
      const before = new Set([...Deno.readDirSync(a.checkpointDir)].map((e) => e.name));
      const opId = `kubelet-${suffix}`;
      const last = await checkpointOnNodeA(ctx, opId);
      const archive = last.result!.archive!;
      const image = last.result!.image!;
      await assertArchiveStored(ctx, opId, archive);
      await assertImagePushed(ctx, image, archive);

      // The kubelet's archive is gone from node-a (the kubelet never removes it).
      const after = [...Deno.readDirSync(a.checkpointDir)].map((e) => e.name)
        .filter((n) => !before.has(n) && n.includes(ns));
      assertEquals(after, [], "the node-local archive was left behind");

      await assertPrepareRestore(ctx, image);
      await assertRestoresOnNodeB(ctx, image);
    } finally {
      await cleanUpKubeletAgent(ctx);
    }
  },
});

/** An agent process on node-a at a fixed port, its stderr kept in `logs`. */
interface KillCtx {
  a: NodeInfo;
  kc: string;
  port: number;
  certs: TestCerts;
  stateDir: string;
  logs: string[];
}

/** Starts `agent/main.ts` as a process, as the node's agent runs. */
function spawnAgent({ a, kc, port, certs, stateDir, logs }: KillCtx): Deno.ChildProcess {
  const p = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${REPO}agent/main.ts`,
      "--node-name",
      a.name,
      "--listen",
      `127.0.0.1:${port}`,
      "--tls-cert",
      certs.server.cert,
      "--tls-key",
      certs.server.key,
      "--client-ca",
      certs.server.ca,
      "--allowed-client",
      "lpm-controller",
      "--state-dir",
      stateDir,
      "--kubeconfig",
      kc,
      "--kubelet-root-dir",
      a.rootDir,
      // The class travels inline in this test's requests (no class object in the cluster).
      "--allow-inline-storage",
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  p.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (t) => void logs.push(t) }),
  ).catch(() => {});
  return p;
}

/** Nothing published after the killed checkpoint: no object under the prefix, no tag. */
async function assertNothingPublished(prefix: string, opId: string): Promise<void> {
  const m = requirePart("minio");
  const r = requirePart("registry");
  const { ListObjectsV2Command } = await import("@aws-sdk/client-s3");
  const s3 = minioS3Client(m);
  const objs = await s3.send(new ListObjectsV2Command({ Bucket: m.bucket, Prefix: prefix }));
  s3.destroy();
  assertEquals((objs.Contents ?? []).map((o) => o.Key), []);
  const tags = await fetch(`http://${r.host}/v2/lpm-agent-test/checkpoints/tags/list`);
  const tagList = tags.ok ? ((await tags.json()).tags ?? []) as string[] : [];
  assertEquals(tagList.filter((t) => t.includes(opId)), []);
}

envTest({ uses: ["kube", "minio", "registry", "nodes"] }, {
  name: "agent process killed (SIGKILL) mid-checkpoint: Failed after restart, nothing published",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const kube = requirePart("kube");
    const { nodes, busybox } = requireNodes(1);
    const a = nodes[0];
    const kc = kube.kubeconfig;
    const suffix = crypto.randomUUID().slice(0, 8);
    const ns = `lpm-agent-kill-${suffix}`;
    const prefix = `agent-kill-${suffix}`;
    const certs = await makeTestCerts();
    const stateDir = await Deno.makeTempDir({ prefix: "lpm-agent-state-" });
    const { freePort } = await import("../localenv/mod.ts");
    const port = await freePort();
    const logs: string[] = [];
    const kill: KillCtx = { a, kc, port, certs, stateDir, logs };
    await createNamespace(kc, ns);
    let agent = spawnAgent(kill);
    let c: AgentClient | undefined;
    try {
      await counterPod(kc, ns, "counter", a.name, busybox);
      await waitFor(async () => {
        try {
          c ??= await clientWith(`127.0.0.1:${port}`, certs.controller);
          return (await c.health()).status === "SERVING";
        } catch {
          return false;
        }
      }, { what: "the agent process to serve", timeoutMs: 60_000, intervalMs: 300 });
      const opId = `kill-${suffix}`;
      const request = {
        operationId: opId,
        namespace: ns,
        pod: "counter",
        container: "counter",
        storageClass: minioClass(prefix),
        leaveRunning: true,
      };
      await c!.checkpoint(request);
      // Kill as soon as the runtime checkpoint is under way.
      await waitFor(async () => (await c!.getOperation(opId)).step === "checkpointing", {
        what: "the checkpoint step",
        timeoutMs: 20_000,
        intervalMs: 20,
      });
      agent.kill("SIGKILL");
      await agent.status;
      c!.close();
      c = undefined;

      agent = spawnAgent(kill);
      let op;
      await waitFor(async () => {
        try {
          c ??= await clientWith(`127.0.0.1:${port}`, certs.controller);
          op = await c.getOperation(opId);
          return true;
        } catch {
          return false;
        }
      }, { what: "the restarted agent to answer", timeoutMs: 60_000, intervalMs: 300 });
      assertEquals(op!.phase, "Failed");
      assertMatch(op!.message, /Agent restarted during "checkpointing"/);
      await assertNothingPublished(prefix, opId);
      // The work dir of the killed operation is gone.
      await Deno.stat(`${stateDir}/work/${opId}`).then(
        () => {
          throw new Error("the work dir survived the restart");
        },
        () => {},
      );
      // The same id again is not re-run: the caller must choose a new id.
      const again = await c!.checkpoint(request);
      assertEquals(again.phase, "Failed");
    } catch (err) {
      throw new Error(`${(err as Error).message}\nagent logs:\n${logs.join("").slice(-3000)}`);
    } finally {
      c?.close();
      try {
        agent.kill("SIGTERM");
      } catch { /* already gone */ }
      await agent.status;
      await kubectl(kc, ["delete", "namespace", ns, "--wait=false"]).catch(() => {});
      for (const d of [certs.dir, stateDir]) await Deno.remove(d, { recursive: true });
    }
  },
});

envTest({ uses: ["kube", "nodes"] }, {
  name: "agent kubelet driver, direct to the real kubelet with the agent's own certificate: " +
    "403 with an RBAC hint, then an archive with the lpm-agent ClusterRole; 404 says what is missing",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const kube = requirePart("kube");
    const { nodes, busybox } = requireNodes(1);
    const a = nodes[0];
    const kc = kube.kubeconfig;
    const suffix = crypto.randomUUID().slice(0, 8);
    const ns = `lpm-agent-direct-${suffix}`;
    const user = `lpm-agent-direct-${suffix}`;
    // The agent's own client certificate from the cluster CA (no control-plane PKI is mounted).
    const dir = await Deno.makeTempDir({ prefix: "lpm-agent-direct-" });
    await Deno.copyFile(kube.caCert, `${dir}/ca.crt`);
    await Deno.copyFile(kube.caKey, `${dir}/ca.key`);
    const { Pki } = await import("../localenv/mod.ts");
    const pki = await Pki.open(dir);
    // Two identities: the kubelet caches authorization answers (30 s for a denial),
    // so the refused one and the allowed one are different users.
    const cert = await pki.issue("agent", { cn: user });
    const deniedCert = await pki.issue("denied", { cn: `${user}-denied` });
    await Deno.remove(`${dir}/ca.key`);
    const direct = async (c: { cert: string; key: string }) =>
      createKubeletDriver({
        nodeName: a.name,
        access: {
          mode: "direct",
          url: `https://${a.ip}:${a.kubeletPort}`,
          caCert: await Deno.readTextFile(kube.caCert),
          clientCert: await Deno.readTextFile(c.cert),
          clientKey: await Deno.readTextFile(c.key),
        },
        kubeletRootDir: a.rootDir,
        runtimeVersion: "containerd://2.2",
      });
    const driver = await direct(cert);
    const deniedDriver = await direct(deniedCert);
    const rbac = `${REPO}config/agent/rbac.yaml`;
    const exists = (args: string[]) => kubectl(kc, ["get", ...args]).then(() => true, () => false);
    const roleExisted = await exists(["clusterrole", "lpm-agent"]);
    const nsExisted = await exists(["namespace", "lpm-system"]);
    await createNamespace(kc, ns);
    const work = `${dir}/work`;
    try {
      await counterPod(kc, ns, "counter", a.name, busybox);
      const ref = { namespace: ns, pod: "counter", container: "counter" };
      const denied = await deniedDriver.checkpoint(ref, { workDir: work }).then(
        () => new Error("no error"),
        (e) => e as Error,
      );
      assertMatch(denied.message, /returned 403 \(the agent lacks RBAC: .*nodes\/checkpoint/);

      // The shipped ClusterRole, bound to this user.
      await kubectl(kc, ["apply", "-f", `${REPO}config/agent/namespace.yaml`, "-f", rbac]);
      await kubectl(kc, [
        "create",
        "clusterrolebinding",
        user,
        "--clusterrole=lpm-agent",
        `--user=${user}`,
      ]);
      let out: Awaited<ReturnType<typeof driver.checkpoint>> | undefined;
      let lastError = "";
      await waitFor(async () => {
        out = await driver.checkpoint(ref, { workDir: work, timeoutSeconds: 60 }).catch((e) => {
          lastError = (e as Error).message;
          return undefined;
        });
        return out !== undefined;
      }, { what: "a checkpoint once RBAC allows it", timeoutMs: 30_000, intervalMs: 500 })
        .catch((e) => {
          throw new Error(`${(e as Error).message}; last error: ${lastError}`);
        });
      assert(out!.archivePath.startsWith(`${a.checkpointDir}/checkpoint-counter_${ns}-counter-`));
      assert((await Deno.stat(out!.archivePath)).size > 0);
      assertEquals(out!.runtime.name, "containerd");
      await Deno.remove(out!.archivePath);

      const missing = await driver.checkpoint({ ...ref, container: "nope" }, { workDir: work })
        .then(() => new Error("no error"), (e) => e as Error);
      assertMatch(missing.message, /returned 404 \(the pod or container does not exist/);
    } finally {
      driver.close();
      deniedDriver.close();
      await kubectl(kc, ["delete", "clusterrolebinding", user, "--ignore-not-found"]).catch(
        () => {},
      );
      if (!roleExisted) {
        await kubectl(kc, ["delete", "--ignore-not-found", "-f", rbac]).catch(() => {});
      }
      if (!nsExisted) {
        await kubectl(kc, ["delete", "namespace", "lpm-system"]).catch(() => {});
      }
      await kubectl(kc, ["delete", "namespace", ns, "--wait=false"]).catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});
