/**
 * The controllers against the real API server, with a scripted agent for
 * fault injection. The default environment has no kubelets, so the test
 * plays the kubelet's part where one is needed: it registers Ready nodes and
 * reports pod status. The same flow on real nodes is in tests/e2e_*.
 */
import * as k8s from "@kubernetes/client-node";
import { pinnedReplicas } from "../testing/workloads.ts";
import { envTest } from "../testing/env.ts";
import "../kube/http1.ts";
import {
  assert,
  assertArrayIncludes,
  assertEquals,
  assertExists,
  assertStringIncludes,
} from "@std/assert";
import { createNamespace, startEnvironment, waitFor } from "../localenv/mod.ts";
import { ScriptedAgents } from "../testing/scripted_agent.ts";
import { startManager } from "../controllers/manager.ts";
import { LpmClient } from "../kube/lpm_client.ts";
import { Logger } from "../base/log.ts";
import type {
  CheckpointStorageClass,
  ContainerCheckpoint,
  PodCheckpoint,
  PodMigration,
} from "../api/mod.ts";

// LPM_TEST_LOG=debug shows the manager's logs.
const quiet = new Logger(
  {},
  (Deno.env.get("LPM_TEST_LOG") as "debug") ?? "error",
  Deno.env.get("LPM_TEST_LOG") ? undefined : () => {},
);
const mergePatch = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);

interface World {
  kc: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  apps: k8s.AppsV1Api;
  lpm: LpmClient;
  ns: string;
  nodeA: string;
  nodeB: string;
  cls: string;
  agents: ScriptedAgents;
}

async function makeNode(
  core: k8s.CoreV1Api,
  name: string,
  runtime = "containerd://2.2.9",
  ready = true,
) {
  await core.createNode({
    body: { metadata: { name, labels: { "kubernetes.io/hostname": name } } },
  });
  await core.patchNodeStatus({
    name,
    body: {
      status: {
        capacity: { cpu: "4", memory: "8Gi", pods: "110" },
        allocatable: { cpu: "4", memory: "8Gi", pods: "110" },
        conditions: [{
          type: "Ready",
          status: ready ? "True" : "False",
          reason: "Test",
          message: "set by the test",
          lastHeartbeatTime: new Date(),
          lastTransitionTime: new Date(),
        }],
        nodeInfo: {
          containerRuntimeVersion: runtime,
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

/** Plays the kubelet: marks a pod Running with all containers running and ready. */
async function markRunning(core: k8s.CoreV1Api, ns: string, name: string) {
  const pod = await core.readNamespacedPod({ name, namespace: ns });
  const now = new Date();
  await core.patchNamespacedPodStatus({
    name,
    namespace: ns,
    body: {
      status: {
        phase: "Running",
        conditions: [{ type: "Ready", status: "True", lastTransitionTime: now }],
        containerStatuses: pod.spec!.containers.map((c) => ({
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
  }, mergePatch);
}

async function withWorld(fn: (w: World) => Promise<void>, opts: { pollsToFinish?: number } = {}) {
  // A private control plane: the shared environment runs lpm's own controller,
  // which would race the in-process manager under test.
  const env = await startEnvironment({ parts: ["kube"] });
  try {
    await inWorld(env.info.kube!.kubeconfig, fn, opts);
  } finally {
    await env.stop();
  }
}

async function inWorld(
  kubeconfig: string,
  fn: (w: World) => Promise<void>,
  opts: { pollsToFinish?: number },
) {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const id = crypto.randomUUID().slice(0, 6);
  const w: World = {
    kc,
    core,
    apps: kc.makeApiClient(k8s.AppsV1Api),
    lpm: new LpmClient(kc),
    ns: `ctl-${id}`,
    nodeA: `a-${id}`,
    nodeB: `b-${id}`,
    cls: `local-${id}`,
    agents: new ScriptedAgents(),
  };
  w.agents.scripts[w.nodeA] = { pollsToFinish: opts.pollsToFinish ?? 2 };
  const dir = await Deno.makeTempDir({ prefix: "lpm-ctl-store-" });
  await createNamespace(core, w.ns);
  await makeNode(core, w.nodeA);
  await makeNode(core, w.nodeB);
  await w.lpm.create("checkpointstorageclasses", "", {
    apiVersion: "lpm.my.domain/v1",
    kind: "CheckpointStorageClass",
    metadata: { name: w.cls },
    spec: {
      provider: "local",
      local: { path: dir },
      registry: { repository: "127.0.0.1:5000/lpm", insecure: true },
    },
  });
  try {
    await fn(w);
  } finally {
    await core.deleteNamespace({ name: w.ns }).catch(() => {});
    await core.deleteNode({ name: w.nodeA }).catch(() => {});
    await core.deleteNode({ name: w.nodeB }).catch(() => {});
    await w.lpm.delete("checkpointstorageclasses", "", w.cls).catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function counterPod(
  w: World,
  name: string,
  extra: Partial<k8s.V1Pod> = {},
  containers = ["app"],
) {
  await w.core.createNamespacedPod({
    namespace: w.ns,
    body: {
      metadata: { name, labels: { app: name }, ...extra.metadata },
      spec: {
        ...extra.spec,
        nodeName: w.nodeA,
        containers: containers.map((c) => ({
          name: c,
          image: "localhost/lpm/busybox:latest",
          command: ["sh", "-c", "sleep 1d"],
        })),
      },
    },
  });
  await markRunning(w.core, w.ns, name);
}

function manager(w: World) {
  return startManager({ kubeConfig: w.kc, agents: w.agents, pollMs: 100, logger: quiet });
}

async function migrate(w: World, name: string, spec: Record<string, unknown>) {
  await w.lpm.create("podmigrations", w.ns, {
    apiVersion: "lpm.my.domain/v1",
    kind: "PodMigration",
    metadata: { name, namespace: w.ns },
    spec: { storageClassName: w.cls, ...spec },
  });
}

async function phaseOf(w: World, name: string): Promise<PodMigration | undefined> {
  return await w.lpm.get<PodMigration>("podmigrations", w.ns, name);
}

async function waitPhase(
  w: World,
  name: string,
  phases: string[],
  timeoutMs = 30_000,
): Promise<PodMigration> {
  return await waitFor(async () => {
    const pm = await phaseOf(w, name);
    return pm && phases.includes(pm.status?.phase ?? "") ? pm : undefined;
  }, { what: `PodMigration "${name}" to reach ${phases.join("|")}`, timeoutMs, intervalMs: 100 });
}

async function podExists(w: World, name: string): Promise<boolean> {
  try {
    await w.core.readNamespacedPod({ name, namespace: w.ns });
    return true;
  } catch {
    return false;
  }
}

/** Deleted: gone, or terminating (without a kubelet a deleted pod stays Terminating). */
async function podDeleted(w: World, name: string): Promise<boolean> {
  try {
    const p = await w.core.readNamespacedPod({ name, namespace: w.ns });
    return !!p.metadata?.deletionTimestamp;
  } catch {
    return true;
  }
}

const opts = { sanitizeOps: false, sanitizeResources: false };

envTest({ starts: ["kube"] }, {
  name:
    "controllers: a two-container pod migrates; checkpoint once per container, restored pod keeps the spec, source deleted",
  ...opts,
  fn: () =>
    withWorld(async (w) => {
      const m = await manager(w);
      try {
        await counterPod(w, "counter", {
          spec: {
            containers: [],
            tolerations: [{ key: "k", operator: "Exists" }],
            dnsConfig: { options: [{ name: "ndots", value: "2" }] },
          },
        }, ["app", "sidecar"]);
        await migrate(w, "move", { podName: "counter", targetNode: w.nodeB });
        const restoring = await waitPhase(w, "move", ["Restoring", "Failed"]);
        assertEquals(restoring.status?.phase, "Restoring", restoring.status?.message);
        const restoredName = await waitFor(
          async () => (await phaseOf(w, "move"))?.status?.restoredPodName,
          {
            what: "restoredPodName",
          },
        );
        const restored = await waitFor(
          () =>
            w.core.readNamespacedPod({ name: restoredName, namespace: w.ns }).catch(() =>
              undefined
            ),
          {
            what: "the restored pod",
          },
        );
        assertEquals(restored.spec?.nodeName, w.nodeB);
        const plain = (v: unknown) => JSON.parse(JSON.stringify(v));
        // The source also has the tolerations admission added; all of them carry over.
        assertArrayIncludes(plain(restored.spec?.tolerations), [{ key: "k", operator: "Exists" }]);
        assertEquals(plain(restored.spec?.dnsConfig?.options), [{ name: "ndots", value: "2" }]);
        for (const c of restored.spec!.containers) {
          assertStringIncludes(c.image!, `counter-${c.name}@sha256:`);
        }
        await markRunning(w.core, w.ns, restoredName);
        const done = await waitPhase(w, "move", ["Succeeded", "Failed"]);
        assertEquals(done.status?.phase, "Succeeded", done.status?.message);
        assertEquals(done.status?.sourceNode, w.nodeA);
        const t = done.status?.timings;
        assertExists(t?.totalMs);
        assertExists(t?.downtimeMs);
        assert((t.downtimeMs ?? -1) >= 0 && t.totalMs >= (t.checkpointMs ?? 0));
        const phases = done.status?.phaseTransitionTimestamps?.map((p) => p.phase);
        assertEquals(phases, [
          "Pending",
          "Checkpointing",
          "Transferring",
          "Restoring",
          "Succeeded",
        ]);
        assertEquals(done.status?.observedGeneration, done.metadata?.generation);
        // The finalizer goes in the write after the final status.
        await waitFor(
          async () => ((await phaseOf(w, "move"))?.metadata?.finalizers ?? []).length === 0,
          {
            what: "the finalizer to be removed once finished",
          },
        );
        await waitFor(() => podDeleted(w, "counter"), { what: "the source pod to be deleted" });
        // One checkpoint operation per container, however many reconciles ran.
        const started = new Set(w.agents.callsOf("checkpoint").map((c) => c.arg));
        assertEquals(started.size, 2);
        const pc = await w.lpm.get<PodCheckpoint>("podcheckpoints", w.ns, "move");
        assertEquals(pc?.metadata?.ownerReferences?.[0].kind, "PodMigration");
        assertEquals(pc?.status?.phase, "Succeeded");
        const cc = await w.lpm.get<ContainerCheckpoint>("containercheckpoints", w.ns, "move-app");
        assertEquals(cc?.status?.phase, "Succeeded");
        assertEquals(cc?.metadata?.ownerReferences?.[0].kind, "PodCheckpoint");
        assertStringIncludes(cc?.status?.image?.reference ?? "", "@sha256:");
        assertEquals(cc?.status?.nodeName, w.nodeA);
        const events = await w.core.listNamespacedEvent({
          namespace: w.ns,
          fieldSelector: `involvedObject.name=move`,
        });
        const reasons = events.items.map((e) => e.reason);
        for (const r of ["PhaseCheckpointing", "PhaseRestoring", "PhaseSucceeded"]) {
          assert(reasons.includes(r), `${r} in ${reasons}`);
        }
      } finally {
        await m.stop();
      }
    }),
});

/** Two classes a migration must refuse: one Unavailable, one that encrypts (no pre-copy). */
async function badClasses(w: World): Promise<{ broken: string; sealed: string }> {
  // A class whose directory cannot be created: validation marks it Unavailable.
  const broken = `broken-${w.cls}`;
  await w.lpm.create("checkpointstorageclasses", "", {
    apiVersion: "lpm.my.domain/v1",
    kind: "CheckpointStorageClass",
    metadata: { name: broken },
    spec: {
      provider: "local",
      local: { path: "/proc/lpm-cannot-exist" },
      registry: { repository: "127.0.0.1:5000/x" },
    },
  });
  // An encrypting class: pre-copy images are plain, so pre-copy is refused with it.
  const sealed = `sealed-${w.cls}`;
  await w.lpm.create("checkpointstorageclasses", "", {
    apiVersion: "lpm.my.domain/v1",
    kind: "CheckpointStorageClass",
    metadata: { name: sealed },
    spec: {
      provider: "local",
      local: { path: "/proc/lpm-cannot-exist" },
      registry: { repository: "127.0.0.1:5000/x" },
      encryption: {
        secretRef: { name: "no-such-keys", namespace: "default" },
        keys: [{ id: "k1", secretKey: "k1" }],
      },
    },
  });
  return { broken, sealed };
}

envTest({ starts: ["kube"] }, {
  name:
    "controllers: bad input fails with a condition that names the problem, and nothing is touched",
  ...opts,
  fn: () =>
    withWorld(async (w) => {
      const core = w.core;
      await makeNode(core, `${w.nodeB}-nr`, "containerd://2.2.9", false);
      await makeNode(core, `${w.nodeB}-old`, "containerd://1.7.24");
      const m = await manager(w);
      try {
        await counterPod(w, "ok");
        await core.createNamespacedPod({
          namespace: w.ns,
          body: {
            metadata: { name: "pending" },
            spec: { nodeName: w.nodeA, containers: [{ name: "app", image: "x" }] },
          },
        });
        await counterPod(w, "hostpath", {
          spec: { containers: [], volumes: [{ name: "data", hostPath: { path: "/srv" } }] },
        });
        const { broken, sealed } = await badClasses(w);
        const cases: [string, Record<string, unknown>, string, string][] = [
          [
            "class-unavailable",
            { podName: "ok", targetNode: w.nodeB, storageClassName: broken },
            "StorageClassUnavailable",
            `"${broken}" is Unavailable`,
          ],
          [
            "missing-pod",
            { podName: "nope", targetNode: w.nodeB },
            "PodNotFound",
            '/nope" does not exist',
          ],
          [
            "not-running",
            { podName: "pending", targetNode: w.nodeB },
            "PodNotRunning",
            "not Running",
          ],
          [
            "unknown-node",
            { podName: "ok", targetNode: "no-such-node" },
            "UnknownTargetNode",
            '"no-such-node" does not exist',
          ],
          [
            "not-ready",
            { podName: "ok", targetNode: `${w.nodeB}-nr` },
            "TargetNodeNotReady",
            "is not Ready",
          ],
          ["same-node", { podName: "ok", targetNode: w.nodeA }, "SameNode", "already runs on"],
          [
            "old-runtime",
            { podName: "ok", targetNode: `${w.nodeB}-old` },
            "RuntimeUnsupported",
            "2.0+",
          ],
          [
            "bad-class",
            { podName: "ok", targetNode: w.nodeB, storageClassName: "no-such-class" },
            "UnknownStorageClass",
            '"no-such-class" does not exist',
          ],
          [
            "hostpath",
            { podName: "hostpath", targetNode: w.nodeB },
            "Unsupported",
            'Volume "data" is a hostPath',
          ],
          [
            "pre-copy-encrypted",
            {
              podName: "ok",
              targetNode: w.nodeB,
              storageClassName: sealed,
              preCopy: { rounds: 2 },
            },
            "PreCopyUnsupported",
            `"${sealed}" encrypts`,
          ],
          [
            "bandwidth",
            { podName: "ok", targetNode: w.nodeB, bandwidthLimit: "100Mi" },
            "NotImplemented",
            'spec.bandwidthLimit is "100Mi"',
          ],
        ];
        for (const [name, spec] of cases) await migrate(w, name, spec);
        for (const [name, , reason, text] of cases) {
          const pm = await waitPhase(w, name, ["Failed", "Succeeded", "Checkpointing"]);
          assertEquals(pm.status?.phase, "Failed", `${name}: ${pm.status?.message}`);
          const c = pm.status?.conditions?.find((c) => c.type === "Succeeded");
          assertEquals(c?.reason, reason, name);
          assertStringIncludes(pm.status?.message ?? "", text, `${name}: "${pm.status?.message}"`);
        }
        assertEquals(w.agents.callsOf("checkpoint").length, 0, "no agent was asked to checkpoint");
        assert(await podExists(w, "ok"), "the pods are untouched");
        await w.lpm.delete("checkpointstorageclasses", "", broken);
        await w.lpm.delete("checkpointstorageclasses", "", sealed);
        await core.deleteNode({ name: `${w.nodeB}-nr` });
        await core.deleteNode({ name: `${w.nodeB}-old` });
      } finally {
        await m.stop();
      }
    }),
});

envTest({ starts: ["kube"] }, {
  name: "controllers: a failing checkpoint fails the migration and leaves the source running",
  ...opts,
  fn: () =>
    withWorld(async (w) => {
      w.agents.scripts[w.nodeA] = {
        checkpointFailsWith: "criu: dump failed: Can't dump ghost file",
      };
      const m = await manager(w);
      try {
        await counterPod(w, "counter");
        await migrate(w, "move", { podName: "counter", targetNode: w.nodeB });
        const pm = await waitPhase(w, "move", ["Failed", "Succeeded"]);
        assertEquals(pm.status?.phase, "Failed");
        assertStringIncludes(pm.status?.message ?? "", "Can't dump ghost file");
        assertStringIncludes(pm.status?.message ?? "", "the source pod goes on");
        const src = await w.core.readNamespacedPod({ name: "counter", namespace: w.ns });
        assertEquals(src.status?.phase, "Running");
        assertEquals(src.metadata?.deletionTimestamp, undefined);
        assertEquals(pm.status?.restoredPodName, undefined, "no restored pod was made");
      } finally {
        await m.stop();
      }
    }),
});

envTest({ starts: ["kube"] }, {
  name:
    "controllers: a storage class in use is not deleted until its checkpoints are; it says who uses it",
  ...opts,
  fn: () =>
    withWorld(async (w) => {
      const m = await manager(w);
      try {
        await counterPod(w, "counter");
        const finalized = async () =>
          (await w.lpm.get("checkpointstorageclasses", "", w.cls))?.metadata?.finalizers ?? [];
        await waitFor(async () => (await finalized()).includes("lpm.my.domain/class-in-use"), {
          what: "the class finalizer",
        });
        await w.lpm.create("podcheckpoints", w.ns, {
          apiVersion: "lpm.my.domain/v1",
          kind: "PodCheckpoint",
          metadata: { name: "keepme", namespace: w.ns },
          spec: { podName: "counter", storageClassName: w.cls },
        });
        await w.lpm.delete("checkpointstorageclasses", "", w.cls);
        const held = await waitFor(async () => {
          const c = await w.lpm.get<CheckpointStorageClass>("checkpointstorageclasses", "", w.cls);
          return c?.status?.message?.includes("still used by") ? c : undefined;
        }, { what: "the class to say it is in use" });
        assert(held.metadata?.deletionTimestamp, "the class is being deleted");
        assertStringIncludes(held.status!.message!, `PodCheckpoint ${w.ns}/keepme`);
        // The checkpoint goes (its data with it); then the class goes.
        await w.lpm.delete("podcheckpoints", w.ns, "keepme");
        await waitFor(
          async () => !(await w.lpm.get("checkpointstorageclasses", "", w.cls)),
          { what: "the class to be deleted once unused", timeoutMs: 30_000 },
        );
      } finally {
        await m.stop();
      }
    }),
});

envTest({ starts: ["kube"] }, {
  name: "controllers: spec.timeoutSeconds fails a migration that does not finish in time, and " +
    "its frozen source is thawed",
  ...opts,
  fn: () =>
    withWorld(async (w) => {
      // The checkpoint never finishes: the agent keeps reporting progress.
      w.agents.scripts[w.nodeA] = { pollsToFinish: 1_000_000 };
      const m = await manager(w);
      try {
        await counterPod(w, "counter");
        const t0 = Date.now();
        await migrate(w, "slow", { podName: "counter", targetNode: w.nodeB, timeoutSeconds: 10 });
        const pm = await waitPhase(w, "slow", ["Failed", "Succeeded"], 40_000);
        const took = Date.now() - t0;
        assertEquals(pm.status?.phase, "Failed");
        const c = pm.status?.conditions?.find((c) => c.type === "Succeeded");
        assertEquals(c?.reason, "Timeout");
        assertStringIncludes(pm.status?.message ?? "", "within 10s (spec.timeoutSeconds)");
        assert(took >= 10_000 && took < 30_000, `failed after ${took} ms`);
        // The source had been frozen for the checkpoint; the failure thawed it.
        const freezes = [...w.agents.freezes.values()];
        assertEquals(freezes.map((f) => f.state), ["thawed"]);
        const frozen = pm.status?.conditions?.find((c) => c.type === "SourceFrozen");
        assertEquals(frozen?.reason, "Thawed");
      } finally {
        await m.stop();
      }
    }),
});

envTest({ starts: ["kube"] }, {
  name: "controllers: a node whose CRIU fails on its kernel is refused in validation " +
    "(agent's CRIU + agent's or node's kernel); a silent agent does not block",
  ...opts,
  fn: () =>
    withWorld(async (w) => {
      const oldCriu = `${w.nodeB}-oldcriu`;
      const nodeKernel = `${w.nodeB}-nodekernel`;
      await makeNode(w.core, oldCriu);
      await makeNode(w.core, nodeKernel);
      // The agent of nodeKernel does not report a kernel: the node's status says it.
      await w.core.patchNodeStatus({
        name: nodeKernel,
        body: { status: { nodeInfo: { kernelVersion: "6.16.3-lpm" } } },
      }, mergePatch);
      w.agents.scripts[oldCriu] = { criuVersion: "4.1.1", kernelVersion: "6.18.0-1-amd64" };
      w.agents.scripts[nodeKernel] = { criuVersion: "4.1" };
      w.agents.scripts[w.nodeB] = { healthHangs: true };
      const m = await manager(w);
      try {
        await counterPod(w, "counter");
        await counterPod(w, "other");
        await migrate(w, "to-old", { podName: "counter", targetNode: oldCriu });
        await migrate(w, "to-kernel", { podName: "counter", targetNode: nodeKernel });
        for (
          const [name, node, texts] of [
            ["to-old", oldCriu, ["CRIU 4.1.1", "kernel 6.18.0-1-amd64"]],
            ["to-kernel", nodeKernel, ["CRIU 4.1 ", "kernel 6.16.3-lpm"]],
          ] as const
        ) {
          const pm = await waitPhase(w, name, ["Failed", "Checkpointing", "Succeeded"]);
          assertEquals(pm.status?.phase, "Failed", `${name}: ${pm.status?.message}`);
          const c = pm.status?.conditions?.find((c) => c.type === "Succeeded");
          assertEquals(c?.reason, "CriuIncompatible", name);
          for (const t of [`Target node "${node}"`, ...texts, "install CRIU >= 4.2"]) {
            assertStringIncludes(pm.status?.message ?? "", t, name);
          }
          assertEquals(await w.lpm.get("podcheckpoints", w.ns, name), undefined, "nothing dumped");
        }
        assertEquals(w.agents.callsOf("checkpoint").length, 0, "no agent was asked to checkpoint");

        // nodeB's agent never answers Health: validation goes on after the short timeout.
        await migrate(w, "to-silent", { podName: "counter", targetNode: w.nodeB });
        const silent = await waitPhase(w, "to-silent", ["Checkpointing", "Transferring", "Failed"]);
        assert(silent.status?.phase !== "Failed", silent.status?.message);

        // The source node's CRIU counts too.
        w.agents.scripts[w.nodeA] = { criuVersion: "4.0", kernelVersion: "6.17.2" };
        await migrate(w, "from-old", { podName: "other", targetNode: w.nodeB });
        const pm = await waitPhase(w, "from-old", ["Failed", "Checkpointing"]);
        assertEquals(pm.status?.phase, "Failed", pm.status?.message);
        assertStringIncludes(pm.status?.message ?? "", `Source node "${w.nodeA}"`);
        assertStringIncludes(pm.status?.message ?? "", "CRIU 4.0 cannot dump");
        // Events are recorded beside the status patch, not before it: wait for it.
        await waitFor(async () => {
          const events = await w.core.listNamespacedEvent({
            namespace: w.ns,
            fieldSelector: "involvedObject.name=from-old",
          });
          return events.items.some((e) =>
            e.reason === "PhaseFailed" && /CRIU 4\.0/.test(e.message ?? "")
          );
        }, { what: "an Event that says why (PhaseFailed naming CRIU 4.0)", timeoutMs: 15_000 });
      } finally {
        await m.stop();
        await w.core.deleteNode({ name: oldCriu }).catch(() => {});
        await w.core.deleteNode({ name: nodeKernel }).catch(() => {});
      }
    }),
});

envTest({ starts: ["kube"] }, {
  name:
    "controllers: transient agent errors are retried with backoff and the migration still succeeds",
  ...opts,
  fn: () =>
    withWorld(async (w) => {
      w.agents.scripts[w.nodeA] = { failCheckpointCalls: 2 };
      const m = await manager(w);
      try {
        await counterPod(w, "counter");
        await migrate(w, "move", { podName: "counter", targetNode: w.nodeB });
        const pm = await waitPhase(w, "move", ["Restoring", "Failed"]);
        assertEquals(pm.status?.phase, "Restoring", pm.status?.message);
        assertEquals(w.agents.callsOf("checkpoint").length, 3, "two failures, then one success");
        assertEquals(w.agents.operations.size >= 1, true);
      } finally {
        await m.stop();
      }
    }),
});

envTest({ starts: ["kube"] }, {
  name:
    "controllers: a restored pod that cannot start fails the migration; it is removed and the source stays",
  ...opts,
  fn: () =>
    withWorld(async (w) => {
      const m = await manager(w);
      try {
        await counterPod(w, "counter");
        await migrate(w, "move", { podName: "counter", targetNode: w.nodeB });
        await waitPhase(w, "move", ["Restoring"]);
        const name = await waitFor(
          async () => (await phaseOf(w, "move"))?.status?.restoredPodName,
          { what: "name" },
        );
        await waitFor(() => podExists(w, name), { what: "the restored pod" });
        await w.core.patchNamespacedPodStatus({
          name,
          namespace: w.ns,
          body: {
            status: {
              phase: "Pending",
              containerStatuses: [{
                name: "app",
                image: "x",
                imageID: "",
                ready: false,
                restartCount: 0,
                state: { waiting: { reason: "ImagePullBackOff", message: "pull access denied" } },
              }],
            },
          },
        }, mergePatch);
        const pm = await waitPhase(w, "move", ["Failed", "Succeeded"]);
        assertEquals(pm.status?.phase, "Failed");
        assertStringIncludes(pm.status?.message ?? "", "ImagePullBackOff");
        await waitFor(() => podDeleted(w, name), { what: "the restored pod to be removed" });
        assert(!(await podDeleted(w, "counter")), "source pod must survive");
      } finally {
        await m.stop();
      }
    }),
});

envTest({ starts: ["kube"] }, {
  name:
    "controllers: a controller restarted mid-migration resumes without duplicate checkpoints or pods",
  ...opts,
  fn: () =>
    withWorld(async (w) => {
      let m = await manager(w);
      await counterPod(w, "counter");
      await migrate(w, "move", { podName: "counter", targetNode: w.nodeB });
      // The scripted checkpoint takes ~30 polls, so the restart lands mid-checkpoint.
      await waitFor(async () => (await phaseOf(w, "move"))?.status?.phase === "Checkpointing", {
        what: "Checkpointing",
        intervalMs: 50,
      });
      await m.stop();
      m = await manager(w); // a new process would start with empty memory
      try {
        await waitPhase(w, "move", ["Restoring"]);
        const name = await waitFor(
          async () => (await phaseOf(w, "move"))?.status?.restoredPodName,
          { what: "name" },
        );
        await waitFor(() => podExists(w, name), { what: "the restored pod" });
        await m.stop();
        m = await manager(w);
        await markRunning(w.core, w.ns, name);
        const pm = await waitPhase(w, "move", ["Succeeded", "Failed"]);
        assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
        // The warm-up pull of the base image on the target (controllers/warm_images.ts) is an
        // operation too, under an id of its own.
        const ids = [...w.agents.operations.keys()];
        assertEquals(
          ids.filter((id) => !id.includes("-warm-")).length,
          2,
          `one checkpoint + one pre-pull operation: ${ids}`,
        );
        assertEquals(ids.filter((id) => id.includes("-warm-")).length, 1, `one warm-up: ${ids}`);
        const pods = await w.core.listNamespacedPod({ namespace: w.ns });
        assertEquals(
          pods.items.filter((p) => !p.metadata?.deletionTimestamp).map((p) => p.metadata?.name),
          [name],
        );
      } finally {
        await m.stop();
      }
    }, { pollsToFinish: 30 }),
});

envTest({ starts: ["kube"] }, {
  name:
    "controllers: a ReplicaSet pod migrates and the ReplicaSet ends with exactly its replica count",
  ...opts,
  fn: () =>
    withWorld(async (w) => {
      const m = await manager(w);
      try {
        await w.apps.createNamespacedReplicaSet({
          namespace: w.ns,
          body: pinnedReplicas({
            app: "web",
            node: w.nodeA,
            podSpec: { tolerations: [{ operator: "Exists" }] },
            containers: [{ name: "app", image: "localhost/lpm/busybox:latest" }],
          }),
        });
        const src = await waitFor(async () => {
          const l = await w.core.listNamespacedPod({ namespace: w.ns, labelSelector: "app=web" });
          return l.items.find((p) => p.spec?.nodeName === w.nodeA);
        }, { what: "the ReplicaSet's pod to be scheduled", timeoutMs: 30_000 });
        const srcName = src.metadata!.name!;
        await markRunning(w.core, w.ns, srcName);
        await migrate(w, "move", { podName: srcName, targetNode: w.nodeB });
        await waitPhase(w, "move", ["Restoring"]);
        const name = await waitFor(
          async () => (await phaseOf(w, "move"))?.status?.restoredPodName,
          { what: "name" },
        );
        const restored = await waitFor(
          () => w.core.readNamespacedPod({ name, namespace: w.ns }).catch(() => undefined),
          {
            what: "the restored pod",
          },
        );
        assertEquals(
          restored.metadata?.labels?.app,
          undefined,
          "selector labels withheld while it starts",
        );
        await markRunning(w.core, w.ns, name);
        const pm = await waitPhase(w, "move", ["Succeeded", "Failed"], 60_000);
        assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
        await waitFor(async () => {
          const l = await w.core.listNamespacedPod({ namespace: w.ns, labelSelector: "app=web" });
          const live = l.items.filter((p) => !p.metadata?.deletionTimestamp);
          return live.length === 1 && live[0].metadata?.name === name;
        }, { what: "the ReplicaSet to hold exactly the restored pod", timeoutMs: 30_000 });
        const adopted = await w.core.readNamespacedPod({ name, namespace: w.ns });
        assertEquals(
          adopted.metadata?.ownerReferences?.[0].name,
          "web",
          "adopted by the ReplicaSet",
        );
        // Give the ReplicaSet time to (wrongly) create a cold replica, then check it did not.
        await new Promise((r) => setTimeout(r, 2000));
        const all = await w.core.listNamespacedPod({ namespace: w.ns, labelSelector: "app=web" });
        assertEquals(
          all.items.filter((p) => !p.metadata?.deletionTimestamp).map((p) => p.metadata?.name),
          [name],
        );
      } finally {
        await m.stop();
      }
    }),
});
