import { assertEquals, assertRejects, assertStringIncludes } from "@std/assert";
import type * as k8s from "@kubernetes/client-node";
import { PM_FINALIZER, podMigrationReconciler } from "./pod_migration.ts";
import type { ReconcilerDeps } from "./deps.ts";
import type { PodCheckpoint, PodMigration } from "../api/mod.ts";
import type { FreezeStatus } from "../contract/agent.ts";
import { MigrationSlots } from "./migration_limits.ts";
import { getCondition } from "./pod_migration_status.ts";
import { Logger } from "../base/log.ts";

const T = Date.parse("2026-11-30T12:00:00Z");
const log = new Logger({}, "error");
const RESTORED = "app-m1a2b3c";

/**
 * A migration in Restoring whose source is frozen on node-a and whose
 * restored pod exists on node-b, with the reconciler's dependencies faked:
 * the restored pod's DELETE fails while `refuseDelete` is true.
 */
function world(status: Partial<NonNullable<PodMigration["status"]>>, restored: k8s.V1Pod) {
  const stamp = (phase: string, ms: number) => ({
    phase,
    phaseTransitionTimestamp: new Date(ms).toISOString(),
  });
  let pm: PodMigration = {
    apiVersion: "lpm.my.domain/v1",
    kind: "PodMigration",
    metadata: {
      name: "m",
      namespace: "ns",
      uid: "1a2b3c4d",
      generation: 1,
      finalizers: [PM_FINALIZER],
    },
    spec: { podName: "app", targetNode: "node-b" },
    status: {
      phase: "Restoring",
      phaseTransitionTimestamps: [stamp("Pending", T - 20_000), stamp("Restoring", T - 5_000)],
      startTime: new Date(T - 20_000).toISOString(),
      sourceNode: "node-a",
      targetNode: "node-b",
      frozenAt: new Date(T - 15_000).toISOString(),
      restoredPodName: RESTORED,
      conditions: [{
        type: "SourceFrozen",
        status: "True",
        reason: "Frozen",
        message: "frozen",
        lastTransitionTime: new Date(T - 15_000).toISOString(),
      }],
      ...status,
    },
  };
  const pc = {
    metadata: { name: "m", namespace: "ns" },
    spec: { podName: "app" },
    status: { nodeName: "node-a", freeze: { key: "pc-uid", state: "Frozen" } },
  } as PodCheckpoint;
  const source: k8s.V1Pod = {
    metadata: { name: "app", namespace: "ns" },
    spec: { nodeName: "node-a", containers: [{ name: "c", image: "busybox" }] },
    status: { phase: "Running" },
  };
  const w = {
    refuseDelete: true,
    restored: restored as k8s.V1Pod | undefined,
    /** Containers of the restored pod the target's agent reports running (after its DELETE too). */
    targetRunning: [] as { name: string; startedAtMs: number }[],
    /** Freeze actions sent to the source's agent, in order. */
    freezeActions: [] as string[],
    deletes: [] as string[],
    warnings: [] as { reason: string; message: string }[],
    get pm() {
      return pm;
    },
  };
  const deps = {
    now: () => new Date(T),
    pollMs: 1000,
    slots: new MigrationSlots(),
    cache: {
      get: (plural: string) =>
        Promise.resolve(structuredClone(plural === "podmigrations" ? pm : pc)),
      list: () => Promise.resolve([]),
      pod: (_ns: string, name: string) =>
        Promise.resolve(structuredClone(name === "app" ? source : w.restored)),
      node: (name: string) => Promise.resolve({ metadata: { name } }),
    },
    lpm: {
      patchStatus(_p: string, _ns: string, _n: string, status: PodMigration["status"]) {
        pm = { ...pm, status: structuredClone(status) };
        return Promise.resolve(pm);
      },
      patchMetadata(_p: string, _ns: string, _n: string, meta: { finalizers: string[] }) {
        pm = { ...pm, metadata: { ...pm.metadata, finalizers: meta.finalizers } };
        return Promise.resolve(pm);
      },
    },
    core: {
      deleteNamespacedPod({ name }: { name: string }) {
        w.deletes.push(name);
        if (!w.refuseDelete) {
          w.restored = undefined;
          return Promise.resolve({});
        }
        return Promise.reject(
          Object.assign(new Error("HTTP-Code: 403"), {
            code: 403,
            body: JSON.stringify({ message: `pods "${name}" is forbidden: refused by a policy` }),
          }),
        );
      },
    },
    agents: {
      forNode: () =>
        Promise.resolve({
          freezePod: () => Promise.reject(new Error("not here")),
          containerStarts: () => Promise.resolve(w.targetRunning),
          controlFreeze(req: { key: string; action: string }): Promise<FreezeStatus> {
            w.freezeActions.push(req.action);
            return Promise.resolve({
              key: req.key,
              state: req.action === "THAW" ? "thawed" : "frozen",
            });
          },
        }),
    },
    events: {
      normal: () => Promise.resolve(),
      warning(_o: unknown, reason: string, message: string) {
        w.warnings.push({ reason, message });
        return Promise.resolve();
      },
    },
  } as unknown as ReconcilerDeps;
  return { w, reconcile: podMigrationReconciler(deps) };
}

const running: k8s.V1Pod = {
  metadata: { name: RESTORED, namespace: "ns", labels: { "lpm.my.domain/migration": "m" } },
  spec: { nodeName: "node-b", containers: [{ name: "c", image: "checkpoint" }] },
  status: {
    phase: "Running",
    containerStatuses: [{
      name: "c",
      image: "checkpoint",
      imageID: "",
      ready: false,
      restartCount: 0,
      started: true,
      state: { running: { startedAt: new Date(T - 3000) } },
    }],
  },
};

Deno.test(
  "fail: a restored pod whose DELETE fails keeps the source frozen and the migration " +
    "unfailed; the retry deletes it, then thaws and fails",
  async () => {
    // Timed out in Restoring while the restored pod runs (its readiness never came).
    const { w, reconcile } = world({ startTime: new Date(T - 700_000).toISOString() }, running);
    await assertRejects(() => reconcile("ns/m", log), Error, `restored pod "ns/${RESTORED}"`);
    assertEquals(w.deletes, [RESTORED]);
    assertEquals(w.freezeActions, ["EXTEND"], "the freeze is renewed, never thawed");
    assertEquals(w.pm.status?.phase, "Restoring");
    const frozen = getCondition(w.pm.status!, "SourceFrozen");
    assertEquals([frozen?.status, frozen?.reason], ["True", "RestoredPodNotDeleted"]);
    assertEquals(getCondition(w.pm.status!, "Succeeded")?.reason, "Timeout");
    assertStringIncludes(w.pm.status?.message ?? "", "refused by a policy");
    assertEquals(w.warnings.map((e) => e.reason), ["RestoredPodNotDeleted"]);
    assertStringIncludes(w.warnings[0].message, `"ns/${RESTORED}"`);

    w.refuseDelete = false;
    await reconcile("ns/m", log);
    assertEquals(w.deletes, [RESTORED, RESTORED]);
    assertEquals(w.freezeActions, ["EXTEND", "THAW"]);
    assertEquals(w.pm.status?.phase, "Failed");
    assertEquals(getCondition(w.pm.status!, "SourceFrozen")?.reason, "Thawed");
    const failed = getCondition(w.pm.status!, "Succeeded");
    assertEquals([failed?.status, failed?.reason], ["False", "Timeout"]);
    assertEquals(w.pm.metadata?.finalizers, []);
  },
);

Deno.test(
  "fail: the failure is kept while its restored pod is not deleted, also when its cause " +
    "is gone on the next reconcile",
  async () => {
    const crashed = structuredClone(running);
    crashed.status!.containerStatuses![0].state = {
      terminated: { exitCode: 1, reason: "Error" },
    };
    const { w, reconcile } = world({}, crashed);
    await assertRejects(() => reconcile("ns/m", log), Error, "RestoreFailed");
    assertEquals(w.pm.status?.phase, "Restoring");
    assertEquals(w.freezeActions.includes("THAW"), false);

    // The kubelet restarted the container: it runs, ready, and shows no failure at all.
    w.restored = structuredClone(running);
    w.restored.status!.containerStatuses![0].ready = true;
    await assertRejects(() => reconcile("ns/m", log), Error, "RestoreFailed");
    assertEquals(w.freezeActions.includes("THAW"), false);
    assertEquals(w.freezeActions.includes("CONFIRM"), false, "no hand-over once failing");

    w.refuseDelete = false;
    await reconcile("ns/m", log);
    assertEquals(w.freezeActions.at(-1), "THAW");
    assertEquals(w.pm.status?.phase, "Failed");
    assertEquals(getCondition(w.pm.status!, "Succeeded")?.reason, "RestoreFailed");
    assertStringIncludes(w.pm.status?.message ?? "", "did not start");
  },
);

Deno.test(
  "fail: a deleted restored pod whose container still runs on the target keeps the source " +
    "frozen until the target's agent reports it stopped",
  async () => {
    const { w, reconcile } = world({ startTime: new Date(T - 700_000).toISOString() }, running);
    w.refuseDelete = false;
    // The DELETE (no grace) removed the object; the kubelet has not stopped the container yet.
    w.targetRunning = [{ name: "c", startedAtMs: T - 3000 }];
    await assertRejects(() => reconcile("ns/m", log), Error, "still run on node");
    assertEquals(w.deletes, [RESTORED]);
    assertEquals(w.freezeActions.includes("THAW"), false, "never thawed while the copy runs");
    assertEquals(w.pm.status?.phase, "Restoring");
    assertEquals(getCondition(w.pm.status!, "SourceFrozen")?.status, "True");

    w.targetRunning = [];
    await reconcile("ns/m", log);
    assertEquals(w.freezeActions.at(-1), "THAW");
    assertEquals(w.pm.status?.phase, "Failed");
    assertEquals(getCondition(w.pm.status!, "Succeeded")?.reason, "Timeout");
  },
);
