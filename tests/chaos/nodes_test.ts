/**
 * Chaos (issue 21): a node's own parts broken during a migration of the
 * 10 Hz counter (localenv/faults.ts); the invariant is testing/chaos.ts
 * assertSurvived.
 * - The target's kubelet stopped in Restoring and not started again while
 *   the migration runs (timeoutSeconds 30): the restored pod can never run.
 *   The cell starts it afterwards, so the shared environment goes on.
 * - The target's containerd restarted (SIGKILL, started at once) in
 *   Restoring: its shims and tasks live on, as after a containerd crash.
 * - The source's containerd restarted while the source is frozen and dumped
 *   (Transferring): its CRI plugin cannot load a PAUSED task, marks the
 *   container UNKNOWN, and the kubelet restarts it from scratch
 *   (docs/freeze.md). The source's agent sees the task no longer paused at
 *   the next EXTEND or CONFIRM, and the migration fails naming that; the
 *   cold restart is this fault's known outcome, the only cell where the
 *   survivor may have counted from 1 again. The controller is held down
 *   meanwhile (killed before the restart, started once the kubelet acted),
 *   so the hand-over cannot come first (left to race, two runs here handed
 *   over first and Succeeded; holding the target's agent down instead
 *   failed the pre-pull, a path the agent cells cover). (Restarted during the dump
 *   instead, the kubelet's checkpoint call fails and the source is thawed:
 *   the runtime-failure path the CRIU failure tests already cover.)
 *
 *   LPM_TEST_ENV=<state>/env.json deno test -A tests/chaos/nodes_test.ts
 * @module
 */
import { envTest, testEnv } from "../../testing/env.ts";
import { runCell } from "../../testing/chaos.ts";
import { ctrTasks, waitFor } from "../../localenv/mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const uses = ["kube", "minio", "registry", "nodes", "lpm"] as const;

envTest({ uses }, {
  name: "chaos: target kubelet stopped in Restoring (not restarted while the migration runs)",
  ...opts,
  async fn() {
    await runCell(testEnv(), {
      name: "kubelet",
      fault: "target kubelet stopped in Restoring",
      reason: /timeoutSeconds|did not finish|kubelet|node/i,
      spec: { timeoutSeconds: 30 },
      async inject(c, w) {
        await w.until("phase Restoring", () => w.pm?.status?.phase === "Restoring");
        await c.faults.stop(`kubelet:${c.nodeB}`);
        console.error(`[chaos] kubelet:${c.nodeB} stopped (phase ${w.pm?.status?.phase})`);
      },
    });
  },
});

envTest({ uses }, {
  name: "chaos: target containerd restarted in Restoring",
  ...opts,
  async fn() {
    await runCell(testEnv(), {
      name: "ctrd-tgt",
      fault: "target containerd restarted in Restoring",
      reason: /containerd|runtime|restor|connect/i,
      async inject(c, w) {
        await w.until("phase Restoring", () => w.pm?.status?.phase === "Restoring");
        const phase = w.pm?.status?.phase;
        await c.faults.restart(`containerd:${c.nodeB}`);
        console.error(`[chaos] containerd:${c.nodeB} restarted (killed in phase ${phase})`);
      },
    });
  },
});

envTest({ uses }, {
  name: "chaos: source containerd restarted while the source is frozen and dumped; the migration " +
    "is held in Transferring (controller down) until the kubelet acted (known outcome: the source restarted cold)",
  ...opts,
  async fn() {
    await runCell(testEnv(), {
      name: "ctrd-src",
      fault: "source containerd restarted while frozen",
      reason: /no longer paused|lost the freeze|containerd/i,
      knownOutcome: "source-restarted-cold",
      // Longer than the kubelet's restart back-off, so the deadline does not thaw first.
      spec: { freezeDeadlineSeconds: 90, timeoutSeconds: 150 },
      async inject(c, w) {
        await w.until("phase Transferring", () => w.pm?.status?.phase === "Transferring");
        // Hold the migration before its hand-over: the controller down.
        await c.faults.kill("controller");
        await c.faults.restart(`containerd:${c.nodeA}`);
        console.error(`[chaos] containerd:${c.nodeA} restarted in Transferring`);
        // The kubelet finds the container UNKNOWN (terminated, ContainerStatusUnknown,
        // while its task stays PAUSED) and, after its back-off, starts a new instance.
        const again = await waitFor(async () => {
          const p = await c.core.readNamespacedPod({ name: "counter", namespace: c.ns });
          const s = p.status?.containerStatuses?.[0];
          return (s?.restartCount ?? 0) > 0 && s?.state?.running ? true : undefined;
        }, { what: "a new instance of the source", timeoutMs: 45_000 }).catch(() => false);
        const node = c.env.nodes!.find((n) => n.name === c.nodeA)!;
        console.error(
          `[chaos] source container running again as a new instance: ${again}; node-a tasks: ${
            (await ctrTasks(node.containerdSocket)).map((t) => t.status).join(", ")
          }`,
        );
        await c.faults.start("controller");
      },
    });
  },
});
