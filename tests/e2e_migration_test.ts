/**
 * End to end on the real local cluster, with lpm installed the way an
 * operator installs it: its own images pushed to the registry and
 * `kubectl apply -k` (localenv/in_cluster.ts) on two real nodes (kubelet +
 * containerd + CRIU); no host-process agent or controller takes part. One
 * environment is started for these steps:
 * - the controller and one agent per node run Ready in lpm-system;
 * - a counter moves node-a -> node-b through `kubectl apply` of a
 *   PodMigration and back through the kubectl plugin (`kubectl lpm migrate`),
 *   each time continuing from the last value the pod it replaced printed (read
 *   from that pod's own log, followed until it is gone);
 * - the README's demo (`localenv/demo.ts`) runs against this deployment and
 *   passes its own check;
 * - pods move and keep their state: a counter (its archive in MinIO has the
 *   digest recorded), a pod with a disk and a memory emptyDir (tests/e2e/volumes.ts;
 *   the agent sees tmpfs mounts through HostToContainer propagation), a pod
 *   through an encrypting class (tests/e2e/encrypted.ts: the agent imports the
 *   decrypted image with the image's ctr), a two-container pod, a Deployment's pod (the Deployment
 *   ends with its replica count), and a failed migration leaves the source
 *   running.
 */
import type * as k8s from "@kubernetes/client-node";
import "../kube/http1.ts";
import { sha256Hex } from "../base/sha256.ts";
import {
  assert,
  assertEquals,
  assertGreater,
  assertMatch,
  assertStringIncludes,
} from "@std/assert";
import { createMigration, openWorkspace } from "../testing/e2e.ts";
import { envTest } from "../testing/env.ts";
import {
  assertContinues,
  assertInstalled,
  finishedMigration,
  followCounter,
} from "../testing/in_cluster.ts";
import { counterCommand, counterValues, pinnedReplicas } from "../testing/workloads.ts";
import {
  type EnvironmentInfo,
  kubectl,
  startEnvironment,
  tool,
  toolPath,
  waitFor,
} from "../localenv/mod.ts";
import type { LpmClient } from "../kube/lpm_client.ts";
import type { ContainerCheckpoint, PodMigration } from "../api/mod.ts";
import { createStore } from "../storage/mod.ts";
import { EMPTYDIR_MOVES, emptyDirMoves } from "./e2e/volumes.ts";
import { ENCRYPTED_MOVES, encryptedMoves } from "./e2e/encrypted.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const REPO_ROOT = new URL("../", import.meta.url).pathname;
const CLASS = "e2e-minio";

interface Ctx {
  core: k8s.CoreV1Api;
  apps: k8s.AppsV1Api;
  lpm: LpmClient;
  ns: string;
  image: string;
  nodeA: string;
  nodeB: string;
}

function counterCmd(prefix = ""): string[] {
  return counterCommand(0.3, prefix);
}

/** A fresh namespace and the e2e MinIO class in `info`'s cluster. */
async function setup(info: EnvironmentInfo): Promise<Ctx> {
  const { core, apps, lpm, ns } = await openWorkspace(info, {
    ns: `e2e-${crypto.randomUUID().slice(0, 6)}`,
    storageClass: { name: CLASS, prefix: "e2e/", repository: "lpm/e2e", reuse: true },
  });
  return {
    core,
    apps,
    lpm,
    ns,
    image: info.nodeImages!.busybox,
    nodeA: info.nodes![0].name,
    nodeB: info.nodes![1].name,
  };
}

function values(c: Ctx, pod: string, container: string, prefix = ""): Promise<number[]> {
  return counterValues(c.core, c.ns, pod, { container, prefix });
}

async function runningOn(c: Ctx, pod: string): Promise<k8s.V1Pod> {
  return await waitFor(async () => {
    const p = await c.core.readNamespacedPod({ name: pod, namespace: c.ns });
    return p.status?.phase === "Running" ? p : undefined;
  }, { what: `pod "${pod}" to run`, timeoutMs: 60_000 });
}

async function migrate(
  c: Ctx,
  name: string,
  pod: string,
  extra: Record<string, unknown> = {},
): Promise<PodMigration> {
  await createMigration(c.lpm, { namespace: c.ns, name }, {
    pod,
    target: c.nodeB,
    storageClassName: CLASS,
    extra,
  });
  return await waitFor(async () => {
    const pm = await c.lpm.get<PodMigration>("podmigrations", c.ns, name);
    return pm?.status?.phase === "Succeeded" || pm?.status?.phase === "Failed" ? pm : undefined;
  }, { what: `PodMigration "${name}" to finish`, timeoutMs: 120_000, intervalMs: 250 });
}

/** The checkpointed log is replayed first on restore; new values follow it. */
async function continuation(
  c: Ctx,
  restored: string,
  container: string,
  prefix = "",
): Promise<{ at: number; next: number[] }> {
  const replayed = await values(c, restored, container, prefix);
  await new Promise((r) => setTimeout(r, 1500));
  const all = await values(c, restored, container, prefix);
  const at = replayed.at(-1) ?? 0;
  return { at, next: all.slice(replayed.length) };
}

async function counterMoves(info: EnvironmentInfo): Promise<void> {
  const c = await setup(info);
  try {
    await c.core.createNamespacedPod({
      namespace: c.ns,
      body: {
        metadata: { name: "counter", labels: { app: "counter" } },
        spec: {
          nodeName: c.nodeA,
          containers: [{ name: "counter", image: c.image, command: counterCmd() }],
        },
      },
    });
    await runningOn(c, "counter");
    await waitFor(async () => ((await values(c, "counter", "counter")).at(-1) ?? 0) >= 5, {
      what: "counting",
    });
    const pm = await migrate(c, "move", "counter");
    assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
    const restored = pm.status!.restoredPodName!;
    const p = await runningOn(c, restored);
    assertEquals(p.spec?.nodeName, c.nodeB);
    const { at, next } = await continuation(c, restored, "counter");
    assertGreater(at, 1, "the checkpoint carried the count");
    assert(next.length > 0, "the restored counter prints new values");
    assertEquals(
      next[0],
      at + 1,
      `counting continues from the checkpoint: at ${at}, then ${next}`,
    );
    for (let i = 1; i < next.length; i++) assertEquals(next[i], next[i - 1] + 1);
    const t = pm.status?.timings;
    assert(
      t?.downtimeMs !== undefined && t.totalMs !== undefined && t.checkpointMs !== undefined,
    );
    console.log(`timings: ${JSON.stringify(t)}`);
    // The stored archive: read it back from MinIO and hash it ourselves.
    const cc = await c.lpm.get<ContainerCheckpoint>("containercheckpoints", c.ns, "move-counter");
    const archive = cc!.status!.archive!;
    const m = info.minio!;
    const store = createStore(
      {
        provider: "minio",
        minio: { endpoint: m.endpoint, bucket: m.bucket, prefix: "e2e/" },
        credentialsSecretRef: { name: CLASS, namespace: "lpm-system" },
      },
      { secret: { accessKeyId: m.accessKey, secretAccessKey: m.secretKey } },
    );
    try {
      const bytes = new Uint8Array(
        await new Response(await store.get(archive.key)).arrayBuffer(),
      );
      const digest = sha256Hex(bytes);
      assertEquals(bytes.length, archive.size);
      assertEquals(digest, archive.sha256);
    } finally {
      store.close?.();
    }
    assertStringIncludes(cc!.status!.image!.reference, "@sha256:");
    const src = await c.core.readNamespacedPod({ name: "counter", namespace: c.ns }).catch(() =>
      undefined
    );
    assert(!src || src.metadata?.deletionTimestamp, "the source pod is deleted");
  } finally {
    await c.core.deleteNamespace({ name: c.ns }).catch(() => {});
  }
}

async function twoContainers(info: EnvironmentInfo): Promise<void> {
  const c = await setup(info);
  try {
    await c.core.createNamespacedPod({
      namespace: c.ns,
      body: {
        metadata: { name: "duo" },
        spec: {
          nodeName: c.nodeA,
          containers: [
            { name: "left", image: c.image, command: counterCmd("L") },
            { name: "right", image: c.image, command: counterCmd("R") },
          ],
        },
      },
    });
    await runningOn(c, "duo");
    await waitFor(async () => ((await values(c, "duo", "right", "R")).at(-1) ?? 0) >= 4, {
      what: "counting",
    });
    const pm = await migrate(c, "move", "duo");
    assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
    const restored = pm.status!.restoredPodName!;
    await runningOn(c, restored);
    for (const [ctr, prefix] of [["left", "L"], ["right", "R"]]) {
      const { at, next } = await continuation(c, restored, ctr, prefix);
      assertGreater(at, 1, `${ctr} carried its count`);
      assertEquals(next[0], at + 1, `${ctr}: at ${at}, then ${next}`);
    }
  } finally {
    await c.core.deleteNamespace({ name: c.ns }).catch(() => {});
  }
}

async function deploymentMoves(info: EnvironmentInfo): Promise<void> {
  const c = await setup(info);
  try {
    await c.apps.createNamespacedDeployment({
      namespace: c.ns,
      body: pinnedReplicas({
        app: "web",
        node: c.nodeA,
        containers: [{ name: "counter", image: c.image, command: counterCmd() }],
      }),
    });
    const src = await waitFor(async () => {
      const l = await c.core.listNamespacedPod({ namespace: c.ns, labelSelector: "app=web" });
      return l.items.find((p) => p.status?.phase === "Running");
    }, { what: "the Deployment's pod to run", timeoutMs: 60_000 });
    await waitFor(
      async () => ((await values(c, src.metadata!.name!, "counter")).at(-1) ?? 0) >= 4,
      { what: "counting" },
    );
    const pm = await migrate(c, "move", src.metadata!.name!);
    assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
    const restored = pm.status!.restoredPodName!;
    await waitFor(async () => {
      const l = await c.core.listNamespacedPod({ namespace: c.ns, labelSelector: "app=web" });
      const live = l.items.filter((p) => !p.metadata?.deletionTimestamp);
      return live.length === 1 && live[0].metadata?.name === restored ? true : undefined;
    }, { what: "exactly the restored pod to serve the Deployment", timeoutMs: 60_000 });
    await new Promise((r) => setTimeout(r, 3000));
    const dep = await c.apps.readNamespacedDeployment({ name: "web", namespace: c.ns });
    assertEquals(dep.status?.replicas, 1);
    const l = await c.core.listNamespacedPod({ namespace: c.ns, labelSelector: "app=web" });
    assertEquals(
      l.items.filter((p) => !p.metadata?.deletionTimestamp).map((p) => p.metadata?.name),
      [restored],
    );
    const { at, next } = await continuation(c, restored, "counter");
    assertEquals(next[0], at + 1, `at ${at}, then ${next}`);
  } finally {
    await c.core.deleteNamespace({ name: c.ns }).catch(() => {});
  }
}

async function failureLeavesSource(info: EnvironmentInfo): Promise<void> {
  const c = await setup(info);
  const bad = `e2e-bad-${c.ns}`;
  try {
    const m = info.minio!;
    await c.lpm.create("checkpointstorageclasses", "", {
      apiVersion: "lpm.my.domain/v1",
      kind: "CheckpointStorageClass",
      metadata: { name: bad },
      spec: {
        provider: "minio",
        minio: { endpoint: m.endpoint, bucket: m.bucket, prefix: "e2e-bad/" },
        credentialsSecretRef: { name: CLASS, namespace: "lpm-system" },
        registry: { repository: "127.0.0.1:9/lpm/nowhere", insecure: true },
      },
    });
    await c.core.createNamespacedPod({
      namespace: c.ns,
      body: {
        metadata: { name: "counter" },
        spec: {
          nodeName: c.nodeA,
          containers: [{ name: "counter", image: c.image, command: counterCmd() }],
        },
      },
    });
    await runningOn(c, "counter");
    await waitFor(async () => {
      const cls = await c.lpm.get<{ status?: { phase?: string } }>(
        "checkpointstorageclasses",
        "",
        bad,
      );
      return cls?.status?.phase === "Available";
    }, { what: "the class's storage to validate", timeoutMs: 60_000 });
    const pm = await migrate(c, "move", "counter", { storageClassName: bad });
    assertEquals(pm.status?.phase, "Failed");
    assertStringIncludes(pm.status?.message ?? "", "the source pod goes on");
    const reason = pm.status?.conditions?.find((x) => x.type === "Succeeded")?.reason;
    assert(reason, "the failed migration names a reason");
    assertGreater(
      await failuresCounted(c, reason),
      0,
      `lpm_podmigration_failures_total{reason="${reason}"}`,
    );
    const before = (await values(c, "counter", "counter")).at(-1)!;
    await new Promise((r) => setTimeout(r, 1500));
    const src = await c.core.readNamespacedPod({ name: "counter", namespace: c.ns });
    assertEquals(src.status?.phase, "Running");
    assertEquals(src.metadata?.deletionTimestamp, undefined);
    assertGreater(
      (await values(c, "counter", "counter")).at(-1)!,
      before,
      "the source keeps counting",
    );
  } finally {
    await c.core.deleteNamespace({ name: c.ns }).catch(() => {});
    await c.lpm.delete("checkpointstorageclasses", "", bad).catch(() => {});
  }
}

/**
 * lpm_podmigration_failures_total{reason} summed over the controller pods'
 * /metrics (hostNetwork in the local overlay: their pod IP is their node's).
 */
async function failuresCounted(c: Ctx, reason: string): Promise<number> {
  const pods = await c.core.listNamespacedPod({
    namespace: "lpm-system",
    labelSelector: "app.kubernetes.io/name=lpm-controller",
  });
  let n = 0;
  for (const p of pods.items) {
    const text = await (await fetch(`http://${p.status?.podIP}:8080/metrics`)).text();
    const m = new RegExp(`^lpm_podmigration_failures_total\\{reason="${reason}"\\} (\\d+)$`, "m")
      .exec(text);
    n += Number(m?.[1] ?? 0);
  }
  return n;
}

/**
 * A counter moves node-a -> node-b through `kubectl apply` of a PodMigration,
 * then back to node-a through `kubectl lpm migrate`.
 */
async function applyThenPlugin(info: EnvironmentInfo): Promise<void> {
  const kc = info.kube!.kubeconfig;
  const ns = `ic-${crypto.randomUUID().slice(0, 6)}`;
  const { core } = await openWorkspace(info, {
    ns,
    storageClass: { name: "ic-minio", prefix: "ic/", repository: "lpm/ic" },
  });
  await core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name: "counter" },
      spec: {
        nodeName: "node-a",
        containers: [{
          name: "counter",
          image: info.nodeImages!.busybox,
          command: counterCommand(0.3),
        }],
      },
    },
  });
  const source = followCounter(kc, ns, "counter");
  try {
    await waitFor(() => (source.values.at(-1) ?? 0) >= 5, {
      what: "the counter to count",
      timeoutMs: 60_000,
    });
    await kubectl(
      kc,
      ["apply", "-f", "-"],
      `apiVersion: lpm.my.domain/v1
kind: PodMigration
metadata:
  name: move
  namespace: ${ns}
spec:
  podName: counter
  targetNode: node-b
  storageClassName: ic-minio
`,
    );
    const pm = await finishedMigration(kc, ns, "move");
    assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
    const restored = pm.status!.restoredPodName!;
    const last = await assertContinues(core, ns, source, restored);
    console.log(
      `migrated: downtime ${pm.status?.timings?.downtimeMs} ms, continued at ${last + 1}`,
    );
    await migrateWithPlugin(kc, core, ns, restored);
  } finally {
    source.stop();
  }
}

/** Runs `kubectl <args>` with the plugin's directory first in PATH. */
async function kubectlWithPlugin(
  kc: string,
  pluginDir: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(tool("kubectl"), {
    args,
    env: { PATH: `${pluginDir}:${toolPath()}`, KUBECONFIG: kc },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

/**
 * Installs the plugin with `deno task kubectl-plugin --dir`, checks its help,
 * and migrates `pod` back to node-a with `kubectl lpm migrate --wait`.
 */
async function migrateWithPlugin(
  kc: string,
  core: k8s.CoreV1Api,
  ns: string,
  pod: string,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "lpm-plugin-" });
  try {
    const install = await new Deno.Command(Deno.execPath(), {
      args: ["task", "kubectl-plugin", "--dir", dir],
      cwd: REPO_ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(install.code, 0, new TextDecoder().decode(install.stderr));
    const help = await kubectlWithPlugin(kc, dir, ["lpm", "--help"]);
    assertEquals(help.code, 0, help.stderr);
    for (const c of ["migrate", "checkpoint", "restore", "status", "drain"]) {
      assertMatch(help.stdout, new RegExp(`^\\s+${c}\\s`, "m"), `"kubectl lpm --help" lists ${c}`);
    }
    const source = followCounter(kc, ns, pod);
    try {
      await waitFor(() => source.values.length > 0, { what: `the log of "${pod}"` });
      const t0 = performance.now();
      const run = await kubectlWithPlugin(kc, dir, [
        ...["lpm", "migrate", pod, "--to", "node-a", "-n", ns],
        ...["--storage-class", "ic-minio", "--name", "back", "--wait"],
      ]);
      const seconds = (performance.now() - t0) / 1000;
      assertEquals(run.code, 0, `kubectl lpm migrate failed:\n${run.stderr}`);
      assertMatch(run.stderr, /Succeeded/);
      const pm = await finishedMigration(kc, ns, "back");
      assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
      assertEquals(pm.status?.targetNode ?? pm.spec.targetNode, "node-a");
      const last = await assertContinues(core, ns, source, pm.status!.restoredPodName!);
      console.log(
        `kubectl lpm migrate: ${
          seconds.toFixed(1)
        } s, downtime ${pm.status?.timings?.downtimeMs} ms, continued at ${last + 1}`,
      );
    } finally {
      source.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * lpm's CA (certificate and key) is in lpm-pki, not beside the agents'
 * Secrets in lpm-system; the agents' ServiceAccount cannot read it, the
 * controller's can.
 */
async function caIsolated(kc: string): Promise<void> {
  const secret = JSON.parse(
    await kubectl(kc, ["-n", "lpm-pki", "get", "secret", "lpm-ca", "-o", "json"]),
  ) as { data?: Record<string, string> };
  assert(secret.data?.["tls.key"], "lpm-pki/lpm-ca holds the CA key");
  await kubectl(kc, ["-n", "lpm-system", "get", "secret", "lpm-ca"]).then(
    () => {
      throw new Error("a Secret lpm-ca exists in lpm-system, where the agents read Secrets");
    },
    (err) => assertMatch(String(err), /NotFound|not found/),
  );
  // `kubectl auth can-i` exits 0 for "yes" only.
  const canGet = (sa: string) =>
    kubectl(kc, [
      ...["auth", "can-i", "get", "secret/lpm-ca", "-n", "lpm-pki"],
      ...["--as", `system:serviceaccount:lpm-system:${sa}`],
    ]).then(() => true, () => false);
  assertEquals(await canGet("lpm-controller"), true, "the controller can read lpm-pki/lpm-ca");
  assertEquals(await canGet("lpm-agent"), false, "an agent can read lpm-pki/lpm-ca");
}

/**
 * The README's demo, run against this deployment: it reuses the running
 * cluster (its state directory holds this environment's env.json and
 * kubeconfig) and exits 0 only when its own check held.
 */
async function demoRuns(info: EnvironmentInfo): Promise<void> {
  const state = await Deno.makeTempDir({ prefix: "lpm-demo-" });
  try {
    await Deno.writeTextFile(`${state}/env.json`, JSON.stringify(info));
    await Deno.copyFile(info.kube!.kubeconfig, `${state}/kubeconfig`);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "localenv/demo.ts"],
      cwd: REPO_ROOT,
      env: { LPM_STATE_DIR: state, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    console.log(text.split("\n").filter((l) => /checked:|timings:/.test(l)).join("\n"));
    assertEquals(out.code, 0, `the demo failed:\n${text}`);
    assertMatch(text, /reusing the running local cluster \(lpm in-cluster\)/);
    const m = /checked: (\d+) = (\d+) \+ 1/.exec(text);
    assert(m, `the demo printed no check:\n${text}`);
    assertEquals(Number(m[1]), Number(m[2]) + 1);
  } finally {
    await Deno.remove(state, { recursive: true });
  }
}

envTest({ starts: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name:
    "e2e (lpm in-cluster): installed by kubectl apply -k from its own images, pods migrate and keep their state",
  ...opts,
  async fn(t) {
    const env = await startEnvironment({
      parts: ["kube", "minio", "registry"],
      nodes: 2,
      inCluster: true,
    });
    try {
      const info = env.info;
      const ic = info.lpmInCluster!;
      console.log(
        `images: ${ic.images.map((i) => i.reference).join(", ")}; sizes ${
          JSON.stringify(ic.sizes)
        }; build ${ic.buildSeconds.toFixed(1)} s, install ${ic.installSeconds.toFixed(1)} s`,
      );
      await t.step({
        name: "in-cluster: the controller and one agent per node run Ready in lpm-system",
        fn: () => assertInstalled(info.kube!.kubeconfig),
      });
      await t.step({
        name:
          "in-cluster: a counter migrates through kubectl apply, and back through kubectl lpm migrate",
        fn: () => applyThenPlugin(info),
      });
      await t.step({
        name: "in-cluster: lpm's CA key is in lpm-pki, which the agents cannot read",
        fn: () => caIsolated(info.kube!.kubeconfig),
      });
      await t.step({
        name: "demo: the README's demo migration passes its check against this deployment",
        fn: () => demoRuns(info),
      });
      await t.step({
        name:
          "e2e: a counter pod moves node-a -> node-b and keeps counting; its archive in MinIO has the digest recorded",
        fn: () => counterMoves(info),
      });
      await t.step({ name: EMPTYDIR_MOVES, fn: () => emptyDirMoves(info) });
      await t.step({ name: ENCRYPTED_MOVES, fn: () => encryptedMoves(info) });
      await t.step({
        name: "e2e: a two-container pod moves and both containers keep counting",
        fn: () => twoContainers(info),
      });
      await t.step({
        name: "e2e: a Deployment's pod moves; the Deployment ends with exactly its replica count",
        fn: () => deploymentMoves(info),
      });
      await t.step({
        name:
          "e2e: a migration that fails (registry unreachable) leaves the source pod running and counting",
        fn: () => failureLeavesSource(info),
      });
    } finally {
      await env.stop();
    }
  },
});
