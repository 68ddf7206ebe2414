/**
 * Chaos (issue 21): the environment's services taken down during a
 * migration of the 10 Hz counter (localenv/faults.ts), then started again;
 * the invariant is testing/chaos.ts assertSurvived.
 * - The registry stopped (SIGTERM) while the source is dumped, so its upload
 *   (the checkpoint image push) finds it down; back after 5 s.
 * - The registry stopped when the target's pre-pull starts (Transferring);
 *   back after 5 s.
 * - MinIO stopped while the source is dumped, so the archive's upload finds
 *   it down; back after 5 s.
 * - The API server restarted (SIGKILL, started at once) while the source is
 *   frozen (Checkpointing), and in Restoring.
 * All five are distinct paths (two stores on the upload, a pull on the
 * target, the controller's and agents' watches and writes mid-checkpoint and
 * mid-restore); none is trimmed.
 *
 *   LPM_TEST_ENV=<state>/env.json deno test -A tests/chaos/services_test.ts
 * @module
 */
import { envTest, testEnv } from "../../testing/env.ts";
import {
  agentOperations,
  type ChaosCtx,
  type FaultPart,
  type MigrationWatch,
  runCell,
} from "../../testing/chaos.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const uses = ["kube", "minio", "registry", "nodes", "lpm"] as const;

/** Waits for the source's dump to run. */
async function dumping(c: ChaosCtx, w: MigrationWatch): Promise<void> {
  await w.until(
    "the source's dump",
    async () =>
      (await agentOperations(c, c.nodeA)).some((o) =>
        o.phase === "Running" && o.step === "checkpointing"
      ),
    90_000,
  );
}

/** `part` stopped now, started again `downMs` later. */
async function outage(c: ChaosCtx, w: MigrationWatch, part: FaultPart, downMs: number) {
  const phase = w.pm?.status?.phase;
  await c.faults.stop(part);
  console.error(`[chaos] ${part} stopped (in phase ${phase})`);
  await new Promise((r) => setTimeout(r, downMs));
  await c.faults.start(part);
}

envTest({ uses }, {
  name: "chaos: registry stopped during the upload, back after 5 s",
  ...opts,
  async fn() {
    await runCell(testEnv(), {
      name: "reg-upl",
      fault: "registry stopped during the upload",
      reason: /registry|push|connect|refused|image|127\.0\.0\.1/i,
      async inject(c, w) {
        await dumping(c, w);
        await outage(c, w, "registry", 5_000);
      },
    });
  },
});

envTest({ uses }, {
  name: "chaos: registry stopped during the target's pull, back after 5 s",
  ...opts,
  async fn() {
    await runCell(testEnv(), {
      name: "reg-pull",
      fault: "registry stopped during the target's pull",
      reason: /registry|pull|connect|refused|image|127\.0\.0\.1/i,
      async inject(c, w) {
        await w.until("phase Transferring", () => w.pm?.status?.phase === "Transferring");
        await outage(c, w, "registry", 5_000);
      },
    });
  },
});

envTest({ uses }, {
  name: "chaos: MinIO stopped during the upload, back after 5 s",
  ...opts,
  async fn() {
    await runCell(testEnv(), {
      name: "minio-upl",
      fault: "MinIO stopped during the upload",
      reason: /minio|s3|store|storage|connect|refused|127\.0\.0\.1/i,
      async inject(c, w) {
        await dumping(c, w);
        await outage(c, w, "minio", 5_000);
      },
    });
  },
});

envTest({ uses }, {
  name: "chaos: API server restarted while the source is frozen (Checkpointing)",
  ...opts,
  async fn() {
    await runCell(testEnv(), {
      name: "api-ckpt",
      fault: "API server restarted in Checkpointing",
      reason: /api|connect|refused|thaw|deadline/i,
      async inject(c, w) {
        await w.until("the source frozen", () => Boolean(w.pm?.status?.frozenAt));
        const phase = w.pm?.status?.phase;
        await c.faults.restart("kube-apiserver");
        console.error(`[chaos] kube-apiserver restarted (killed in phase ${phase})`);
      },
    });
  },
});

envTest({ uses }, {
  name: "chaos: API server restarted in Restoring",
  ...opts,
  async fn() {
    await runCell(testEnv(), {
      name: "api-rest",
      fault: "API server restarted in Restoring",
      reason: /api|connect|refused|thaw|deadline/i,
      async inject(c, w) {
        await w.until("phase Restoring", () => w.pm?.status?.phase === "Restoring");
        const phase = w.pm?.status?.phase;
        await c.faults.restart("kube-apiserver");
        console.error(`[chaos] kube-apiserver restarted (killed in phase ${phase})`);
      },
    });
  },
});
