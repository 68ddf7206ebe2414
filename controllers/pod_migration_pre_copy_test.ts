import { assertEquals, assertRejects } from "@std/assert";
import type * as k8s from "@kubernetes/client-node";
import type { PodMigration, PreCopyRoundStatus } from "../api/mod.ts";
import type { OperationStatus, PreCopyRequest, PrepareRestoreRequest } from "../contract/agent.ts";
import type { ReconcilerDeps } from "./deps.ts";
import { preCopyConverged, preCopyOperationId, stepPreCopying } from "./pod_migration_pre_copy.ts";
import type { MigrationStatus } from "./pod_migration_status.ts";

const round = (n: number, pages: number, dirtyPages: number): PreCopyRoundStatus => ({
  round: n,
  pages,
  dirtyPages,
  dirtyBytes: dirtyPages * 4096,
  dumpMs: 10,
});

Deno.test("pre-copy converges at the limit, when the dirty set stops shrinking, or is small", () => {
  assertEquals(preCopyConverged([], 3), false);
  assertEquals(preCopyConverged([round(1, 1000, 1000)], 1), true, "limit 1");
  assertEquals(preCopyConverged([round(1, 1000, 1000)], 3), false, "round 1 alone says nothing");
  assertEquals(preCopyConverged([round(1, 1000, 1000), round(2, 1000, 300)], 3), false);
  assertEquals(preCopyConverged([round(1, 1000, 1000), round(2, 1000, 300)], 2), true, "limit");
  assertEquals(
    preCopyConverged([round(1, 1000, 1000), round(2, 1000, 300), round(3, 1000, 310)], 9),
    true,
    "not shrinking",
  );
  assertEquals(preCopyConverged([round(1, 1000, 1000), round(2, 1000, 31)], 9), true, "small");
  assertEquals(preCopyConverged([round(1, 1000, 1000), round(2, 1000, 32)], 9), false);
});

/**
 * A migration in PreCopying with the source's and target's agents faked: the
 * source's rounds finish at once with the dirty pages `dirty[n - 1]`, the
 * target's pulls when `pullDone` says so.
 */
function world(dirty: number[], rounds = 3) {
  const pm: PodMigration = {
    metadata: { name: "m", namespace: "ns", uid: "u1" },
    spec: { podName: "app", targetNode: "node-b", preCopy: { rounds } },
  };
  const status: MigrationStatus = {
    phase: "PreCopying",
    sourceNode: "node-a",
    targetNode: "node-b",
    storageClassName: "c",
    phaseTransitionTimestamps: [{
      phase: "PreCopying",
      phaseTransitionTimestamp: "2026-11-30T12:00:00Z",
    }],
  };
  const w = {
    preCopies: [] as PreCopyRequest[],
    pulls: [] as PrepareRestoreRequest[],
    pullDone: true,
    fail: "",
    events: [] as string[],
  };
  const pod: k8s.V1Pod = {
    metadata: { name: "app", namespace: "ns" },
    spec: { containers: [{ name: "c", image: "i" }] },
    status: { phase: "Running" },
  };
  const n = (id: string) => Number(/-pc(\d+)-/.exec(id)![1]);
  const deps = {
    now: () => new Date("2026-11-30T12:00:05Z"),
    pollMs: 1000,
    cache: {
      pod: () => Promise.resolve(pod),
      get: () =>
        Promise.resolve({ metadata: { name: "c" }, spec: { registry: { repository: "r/x" } } }),
    },
    agents: {
      forNode: (node: string) =>
        Promise.resolve(
          node === "node-a"
            ? {
              preCopy(req: PreCopyRequest): Promise<OperationStatus> {
                w.preCopies.push(req);
                if (w.fail) {
                  return Promise.resolve({ id: req.operationId, phase: "Failed", message: w.fail });
                }
                const k = n(req.operationId);
                return Promise.resolve({
                  id: req.operationId,
                  phase: "Succeeded",
                  preCopy: {
                    image: { reference: `r/x@sha256:${k}`, digest: `sha256:${k}` },
                    round: round(k, 1000, dirty[k - 1]),
                    layers: [],
                  },
                });
              },
            }
            : {
              prepareRestore(req: PrepareRestoreRequest): Promise<OperationStatus> {
                w.pulls.push(req);
                return Promise.resolve({
                  id: req.operationId,
                  phase: w.pullDone ? "Succeeded" : "Running",
                });
              },
            },
        ),
    },
    events: { normal: (_o: unknown, reason: string) => w.events.push(reason) },
  } as unknown as ReconcilerDeps;
  return { w, pm, status, step: () => stepPreCopying(deps, pm, status) };
}

Deno.test("pre-copy step: rounds chain, each pulled on the target before the next, until converged", async () => {
  const { w, pm, status, step } = world([1000, 300, 100, 50], 3);
  await step();
  // Three rounds (the limit), each naming the one before and the chain's limit, each pulled.
  assertEquals(w.preCopies.map((r) => [r.operationId, r.previousOperationId, r.maxRounds]), [
    [preCopyOperationId(pm, "c", 1), undefined, 3],
    [preCopyOperationId(pm, "c", 2), preCopyOperationId(pm, "c", 1), 3],
    [preCopyOperationId(pm, "c", 3), preCopyOperationId(pm, "c", 2), 3],
  ]);
  assertEquals(w.pulls.map((p) => p.image), ["r/x@sha256:1", "r/x@sha256:2", "r/x@sha256:3"]);
  assertEquals(status.phase, "Checkpointing");
  assertEquals(status.timings?.preCopyMs, 5000);
  const c = status.preCopy!.containers[0];
  assertEquals([c.operationId, c.image], [preCopyOperationId(pm, "c", 3), "r/x@sha256:3"]);
  assertEquals(c.rounds!.map((r) => r.dirtyPages), [1000, 300, 100]);
  assertEquals(w.events, ["PreCopyRound", "PreCopyRound", "PreCopyRound"]);
});

Deno.test("pre-copy step: a pull under way holds the next round; a small dirty set ends early", async () => {
  const { w, status, step } = world([1000, 20], 5);
  w.pullDone = false;
  await step();
  assertEquals(w.preCopies.length, 1, "round 2 waits for round 1 on the target");
  assertEquals(status.phase, "PreCopying");
  w.pullDone = true;
  await step();
  // Round 2 dirtied 20 of 1000 pages (under 1/32): no round 3.
  assertEquals(w.preCopies.length, 2, "round 1 was recorded: only round 2 is asked for");
  assertEquals(w.pulls.length, 3, "round 1's pull asked again (level-based), then round 2's");
  assertEquals(status.preCopy!.containers[0].rounds!.length, 2);
  assertEquals(status.phase, "Checkpointing");
});

Deno.test("pre-copy step: a failed round fails the migration, saying the source runs on", async () => {
  const { w, step } = world([1000]);
  w.fail = "runc checkpoint --leave-running failed: boom";
  await assertRejects(() => step(), Error, "the source was never frozen and runs on): runc");
});
