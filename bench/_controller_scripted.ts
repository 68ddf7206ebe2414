/**
 * `deno task bench controller --count N`: the controller (a process of its
 * own, bench/_scripted_controller.ts) with the scripted agent against a
 * real API server; the bench plays the kubelet of 10 fake nodes.
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import "../kube/http1.ts";
import { createNamespace, startEnvironment } from "../localenv/mod.ts";
import { LpmClient } from "../kube/lpm_client.ts";
import { printBatch } from "./_controller_probe.ts";
import { type Move, pool, runBatch } from "./_controller_batch.ts";
import type { Counts } from "./_controller_probe.ts";
import { ALLOCATOR_ENV } from "../base/allocator_env.ts";

const NODES = 10;
const mergePatch = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);

/** Ready now: what a kubelet's heartbeat says (the node lifecycle controller reads it). */
async function heartbeat(core: k8s.CoreV1Api, name: string): Promise<void> {
  const now = new Date();
  await core.patchNodeStatus({
    name,
    body: {
      status: {
        capacity: { cpu: "64", memory: "256Gi", pods: "500" },
        allocatable: { cpu: "64", memory: "256Gi", pods: "500" },
        conditions: [{
          type: "Ready",
          status: "True",
          reason: "Bench",
          message: "set by the bench",
          lastHeartbeatTime: now,
          lastTransitionTime: now,
        }],
        nodeInfo: {
          containerRuntimeVersion: "containerd://2.2.9",
          architecture: "amd64",
          operatingSystem: "linux",
          bootID: "",
          kernelVersion: "",
          kubeProxyVersion: "",
          kubeletVersion: "v1.34.4",
          machineID: "",
          osImage: "",
          systemUUID: "",
        },
      },
    },
  }, mergePatch);
}

/** Marks every pod of `ns` that has a node and is not Running as Running (a kubelet's report). */
async function playKubelet(core: k8s.CoreV1Api, ns: string): Promise<void> {
  const pods = (await core.listNamespacedPod({ namespace: ns })).items.filter((p) =>
    p.spec?.nodeName && p.status?.phase !== "Running" && !p.metadata?.deletionTimestamp
  );
  const now = new Date();
  await pool(pods, 10, async (p) => {
    await core.patchNamespacedPodStatus({
      name: p.metadata!.name!,
      namespace: ns,
      body: {
        status: {
          phase: "Running",
          conditions: [{ type: "Ready", status: "True", lastTransitionTime: now }],
          containerStatuses: p.spec!.containers.map((c) => ({
            name: c.name,
            image: c.image!,
            imageID: "",
            ready: true,
            restartCount: 0,
            started: true,
            state: { running: { startedAt: now } },
          })),
        },
      },
    }, mergePatch).catch(() => {});
  });
}

/** A loop running `fn` every `ms` until stopped (errors ignored: the next turn retries). */
function every(ms: number, fn: () => Promise<void>): () => Promise<void> {
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      await fn().catch(() => {});
      await new Promise((r) => setTimeout(r, ms));
    }
  })();
  return async () => {
    stopped = true;
    await done;
  };
}

/** Starts the scripted controller process; resolves once it serves /metrics. */
async function startController(kubeconfig: string, v8Flags?: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...(v8Flags ? [`--v8-flags=${v8Flags}`] : []),
      new URL("./_scripted_controller.ts", import.meta.url).pathname,
      kubeconfig,
      "500",
    ],
    // As the controller ships: its allocator settings (base/allocator_env.ts).
    env: { ...ALLOCATOR_ENV },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the scripted controller exited before it ran");
    text += value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  const { healthPort } = JSON.parse(text.split("\n")[0]) as { healthPort: number };
  return {
    pid: child.pid,
    healthPort,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

/** Creates `names` as pods on their nodes (the kubelet loop marks them Running). */
async function createPods(core: k8s.CoreV1Api, ns: string, pods: { name: string; node: string }[]) {
  await pool(pods, 10, async (p) => {
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: p.name, labels: { app: "bench" } },
        spec: {
          nodeName: p.node,
          containers: [{
            name: "app",
            image: "localhost/lpm/busybox:latest",
            command: ["sleep", "1d"],
          }],
        },
      },
    });
  });
}

/** The scripted run: 3 single migrations (the baseline), then `count` at once. */
export async function runScripted(count: number, v8Flags?: string): Promise<void> {
  console.error(`[bench] scripted: starting a control plane`);
  const env = await startEnvironment({ parts: ["kube"] });
  const dir = await Deno.makeTempDir({ prefix: "lpm-bench-ctl-" });
  const stops: (() => Promise<void>)[] = [];
  try {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(env.info.kube!.kubeconfig);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const lpm = new LpmClient(kc);
    const ns = "bench";
    await createNamespace(core, ns);
    const nodes = Array.from({ length: NODES }, (_, i) => `bn-${i}`);
    for (const n of nodes) {
      await core.createNode({
        body: { metadata: { name: n, labels: { "kubernetes.io/hostname": n } } },
      });
    }
    stops.push(every(10_000, () => pool(nodes, 5, (n) => heartbeat(core, n))));
    stops.push(every(300, () => playKubelet(core, ns)));
    await lpm.create("checkpointstorageclasses", "", {
      apiVersion: "lpm.my.domain/v1",
      kind: "CheckpointStorageClass",
      metadata: { name: "bench" },
      spec: {
        provider: "local",
        local: { path: dir },
        registry: { repository: "127.0.0.1:5000/lpm", insecure: true },
      },
    });
    const controller = await startController(env.info.kube!.kubeconfig, v8Flags);
    stops.unshift(controller.stop);
    const target = { lpm, ns, storageClassName: "bench", controller, timeoutMs: 30 * 60_000 };
    const baseline: Counts[] = [];
    for (let r = 0; r < 3; r++) {
      await createPods(core, ns, [{ name: `single-${r}`, node: nodes[0] }]);
      await waitRunning(core, ns, [`single-${r}`]);
      const one = await runBatch("single", [{
        name: `single-${r}`,
        pod: `single-${r}`,
        target: nodes[1],
      }], target);
      if (one.failed) throw new Error(`a single migration failed: ${one.failures.join("; ")}`);
      baseline.push(one.per);
    }
    const pods = Array.from(
      { length: count },
      (_, i) => ({ name: `p-${i}`, node: nodes[i % NODES] }),
    );
    console.error(`[bench] scripted: ${count} pods on ${NODES} fake nodes`);
    await createPods(core, ns, pods);
    await waitRunning(core, ns, pods.map((p) => p.name));
    const moves: Move[] = pods.map((p, i) => ({
      name: `m-${i}`,
      pod: p.name,
      target: nodes[(i + 1) % NODES],
    }));
    console.error(`[bench] scripted: ${count} PodMigrations at once`);
    const label = `scripted agent, real API server${v8Flags ? `, --v8-flags=${v8Flags}` : ""}`;
    const r = await runBatch(label, moves, target);
    printBatch(r, baseline);
    for (const f of r.failures) console.log(`  failed: ${f}`);
  } finally {
    for (const s of stops) await s();
    await env.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Waits until the pods `names` of `ns` are Running. */
async function waitRunning(core: k8s.CoreV1Api, ns: string, names: string[]): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const running = new Set(
      (await core.listNamespacedPod({ namespace: ns })).items
        .filter((p) => p.status?.phase === "Running").map((p) => p.metadata!.name!),
    );
    if (names.every((n) => running.has(n))) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`not all of ${names.length} pods ran in namespace "${ns}" within 5 minutes`);
}
