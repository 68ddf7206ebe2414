/**
 * Chaos (issue 21): the controller SIGKILLed during a migration of the 10 Hz
 * counter, restarted 2 s later from the same command line
 * (localenv/faults.ts); the invariant is testing/chaos.ts assertSurvived.
 *
 * Cells, one per distinct code path of a restarted controller:
 * - Checkpointing, the source frozen: the restarted controller finds a
 *   PodCheckpoint whose agent operations run on; it must renew the freeze
 *   (EXTEND) and carry on, or fail and thaw.
 * - Restoring: the restored pod is created or starting; the restarted
 *   controller finds it by name (status.restoredPodName).
 * - Hand-over: the restored pod runs; CONFIRM, the source's deletion and
 *   KILL may be half done.
 * Left out, repeating a path above: Pending (the controller has called no
 * agent yet; a restart is a first reconcile, which every migration runs)
 * and Transferring (the target's pre-pull is an agent operation the
 * restarted controller polls by its recorded id, exactly as it polls the
 * checkpoint's operations in the Checkpointing cell).
 *
 *   LPM_TEST_ENV=<state>/env.json deno test -A tests/chaos/controller_test.ts
 * @module
 */
import { envTest, testEnv } from "../../testing/env.ts";
import { type ChaosCtx, type MigrationWatch, runCell } from "../../testing/chaos.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const uses = ["kube", "minio", "registry", "nodes", "lpm"] as const;

/** The controller killed now, back 2 s later. */
async function killController(c: ChaosCtx, w: MigrationWatch, at: string): Promise<void> {
  await c.faults.kill("controller");
  console.error(`[chaos] controller killed at ${at} (phase ${w.pm?.status?.phase})`);
  await new Promise((r) => setTimeout(r, 2_000));
  await c.faults.start("controller");
}

envTest({ uses }, {
  name: "chaos: controller SIGKILL while the source is frozen (Checkpointing), back after 2 s",
  ...opts,
  async fn() {
    await runCell(testEnv(), {
      name: "ctl-ckpt",
      fault: "controller SIGKILL in Checkpointing",
      reason: /thaw|deadline|controller|frozen/i,
      async inject(c, w) {
        await w.until("the source frozen", () => Boolean(w.pm?.status?.frozenAt));
        await killController(c, w, "frozenAt");
      },
    });
  },
});

envTest({ uses }, {
  name: "chaos: controller SIGKILL in Restoring, back after 2 s",
  ...opts,
  async fn() {
    await runCell(testEnv(), {
      name: "ctl-rest",
      fault: "controller SIGKILL in Restoring",
      reason: /restor|thaw|deadline/i,
      async inject(c, w) {
        await w.until("phase Restoring", () => w.pm?.status?.phase === "Restoring");
        await killController(c, w, "Restoring");
      },
    });
  },
});

envTest({ uses }, {
  name: "chaos: controller SIGKILL at hand-over (the restored pod runs), back after 2 s",
  ...opts,
  async fn() {
    await runCell(testEnv(), {
      name: "ctl-hand",
      fault: "controller SIGKILL at hand-over",
      reason: /confirm|hand|thaw|deadline/i,
      async inject(c, w) {
        await w.until("the restored pod running", async () => {
          const name = w.pm?.status?.restoredPodName;
          if (!name) return false;
          const p = await c.core.readNamespacedPod({ name, namespace: c.ns }).catch(() =>
            undefined
          );
          return Boolean(p?.status?.containerStatuses?.[0]?.state?.running);
        });
        await killController(c, w, "restored pod running");
      },
    });
  },
});
