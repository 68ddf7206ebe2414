/**
 * Chaos (issue 21): an lpm agent SIGKILLed during a migration of the 10 Hz
 * counter and restarted 1 s later from the same command line
 * (localenv/faults.ts); the invariant is testing/chaos.ts assertSurvived.
 * The moment comes from the agent's own operation records: the source's
 * dump (step "checkpointing", no archive yet), its upload (the archive on
 * the node: `localPaths` set), the target's pre-pull (phase Transferring)
 * and restore (phase Restoring). All four cells are distinct paths: an
 * operation lost in the runtime call, one lost mid-upload with an archive on
 * disk, and the two target operations, which the source's freeze outlives.
 * A fifth cell kills the source's agent inside the hand-over, between its
 * CONFIRM and its KILL (seen in the agent's own log; the controller deletes
 * the source in between, about 0.3 s here): the retried CONFIRM must still
 * answer "confirmed" after the restart (it answered "unknown" before
 * agent/freezes_ended.ts, and the restored pod was removed with the source
 * already deleted: no copy left).
 *
 *   LPM_TEST_ENV=<state>/env.json deno test -A tests/chaos/agents_test.ts
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
/** How a Failed migration names a lost agent operation. */
const AGENT = /agent|operation|unavailable|connect|restart|thaw|deadline/i;

async function killAgent(c: ChaosCtx, w: MigrationWatch, node: string, at: string) {
  const part: FaultPart = `agent:${node}`;
  await c.faults.kill(part);
  console.error(`[chaos] ${part} killed at ${at} (phase ${w.pm?.status?.phase})`);
  await new Promise((r) => setTimeout(r, 1_000));
  await c.faults.start(part);
}

envTest({ uses }, {
  name: "chaos: source agent SIGKILL during the dump, restarted",
  ...opts,
  async fn() {
    await runCell(testEnv(), {
      name: "src-dump",
      fault: "source agent SIGKILL during the dump",
      reason: AGENT,
      async inject(c, w) {
        await w.until(
          "the source's dump",
          async () =>
            (await agentOperations(c, c.nodeA)).some((o) =>
              o.phase === "Running" && o.step === "checkpointing" && !o.localPaths?.length
            ),
        );
        await killAgent(c, w, c.nodeA, "dump");
      },
    });
  },
});

envTest({ uses }, {
  name: "chaos: source agent SIGKILL during the upload, restarted",
  ...opts,
  async fn() {
    await runCell(testEnv(), {
      name: "src-upl",
      fault: "source agent SIGKILL during the upload",
      reason: AGENT,
      async inject(c, w) {
        await w.until(
          "the source's upload",
          async () =>
            (await agentOperations(c, c.nodeA)).some((o) =>
              o.phase === "Running" && (o.localPaths?.length ?? 0) > 0
            ),
        );
        await killAgent(c, w, c.nodeA, "upload");
      },
    });
  },
});

envTest({ uses }, {
  name: "chaos: target agent SIGKILL during the pre-pull (Transferring), restarted",
  ...opts,
  async fn() {
    await runCell(testEnv(), {
      name: "tgt-pull",
      fault: "target agent SIGKILL during the pre-pull",
      reason: AGENT,
      async inject(c, w) {
        await w.until("phase Transferring", () => w.pm?.status?.phase === "Transferring");
        await killAgent(c, w, c.nodeB, "pre-pull");
      },
    });
  },
});

envTest({ uses }, {
  name: "chaos: target agent SIGKILL during the restore, restarted",
  ...opts,
  async fn() {
    await runCell(testEnv(), {
      name: "tgt-rest",
      fault: "target agent SIGKILL during the restore",
      reason: AGENT,
      async inject(c, w) {
        await w.until("phase Restoring", () => w.pm?.status?.phase === "Restoring");
        await killAgent(c, w, c.nodeB, "restore");
      },
    });
  },
});

/** Resolves once `node`'s agent logs `msg` for namespace `ns` (its log read from the end every 10 ms). */
async function agentLogged(c: ChaosCtx, w: MigrationWatch, node: string, msg: string) {
  const path = `${c.env.logDir}/agent-${node}.log`;
  let offset = (await Deno.stat(path)).size;
  let buf = "";
  await w.until(`the agent of ${node} to log "${msg}"`, async () => {
    const f = await Deno.open(path);
    try {
      await f.seek(offset, Deno.SeekMode.Start);
      const chunk = new Uint8Array(1 << 16);
      const n = await f.read(chunk);
      if (!n) return false;
      offset += n;
      buf += new TextDecoder().decode(chunk.subarray(0, n));
    } finally {
      f.close();
    }
    return buf.split("\n").some((l) => l.includes(`"msg":"${msg}"`) && l.includes(`"${c.ns}/`));
  });
}

envTest({ uses }, {
  name: "chaos: source agent SIGKILL between the hand-over's CONFIRM and KILL, restarted",
  ...opts,
  async fn() {
    await runCell(testEnv(), {
      name: "src-hand",
      fault: "source agent SIGKILL between CONFIRM and KILL",
      reason: AGENT,
      async inject(c, w) {
        await agentLogged(c, w, c.nodeA, "freeze CONFIRM");
        await c.faults.kill(`agent:${c.nodeA}`);
        const log = await Deno.readTextFile(`${c.env.logDir}/agent-${c.nodeA}.log`);
        const killed = log.split("\n").some((l) =>
          l.includes('"msg":"freeze KILL"') && l.includes(`"${c.ns}/`)
        );
        console.error(
          `[chaos] agent:${c.nodeA} killed after CONFIRM, ${
            killed ? "AFTER its KILL too (the window was missed)" : "before KILL"
          }`,
        );
        await new Promise((r) => setTimeout(r, 1_000));
        await c.faults.start(`agent:${c.nodeA}`);
      },
    });
  },
});
