/**
 * `PodCheckpoint.spec.leaveRunning` on the real nodes, through the CLI that
 * sets it: by default the pod keeps running after its checkpoint (a backup);
 * `deno task checkpoint --stop` (leaveRunning false) freezes the whole pod
 * before the dump and stops it after: it is deleted and prints nothing after
 * the instant it was frozen. Log lines carry the runtime's timestamps, so
 * "nothing after the freeze" is read from the pod's own log, not assumed.
 */
import type * as k8s from "@kubernetes/client-node";
import "../kube/http1.ts";
import { assert, assertEquals, assertGreater } from "@std/assert";
import { openWorkspace } from "../testing/e2e.ts";
import { envTest, requirePart, testEnv } from "../testing/env.ts";
import { waitFor } from "../localenv/mod.ts";
import type { PodCheckpoint } from "../api/mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const CLASS = "e2e-modes-minio";
const REPO_ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** Timestamped counter lines of a pod's log: [time ms, value]. */
async function lines(core: k8s.CoreV1Api, ns: string, pod: string): Promise<[number, number][]> {
  const log = String(
    await core.readNamespacedPodLog({ name: pod, namespace: ns, container: "c", timestamps: true }),
  );
  return log.split("\n").map((l) => l.trim().split(" ")).filter((f) => /^\d+$/.test(f[1] ?? ""))
    .map((f) => [Date.parse(f[0]), Number(f[1])] as [number, number]);
}

async function checkpointCli(kubeconfig: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${REPO_ROOT}/cli/checkpoint.ts`, "--kubeconfig", kubeconfig, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name: "checkpoint modes: by default the pod keeps running; --stop freezes it, then stops it: " +
    "nothing runs after the freeze",
  ...opts,
  async fn() {
    const env = testEnv();
    const kube = requirePart("kube");
    const { core, lpm, ns } = await openWorkspace(env, {
      ns: `e2e-modes-${crypto.randomUUID().slice(0, 6)}`,
      storageClass: { name: CLASS, prefix: "e2e-modes/", repository: "lpm/e2e-modes", reuse: true },
    });
    const start = async (name: string) => {
      await core.createNamespacedPod({
        namespace: ns,
        body: {
          metadata: { name },
          spec: {
            nodeName: env.nodes![0].name,
            containers: [{
              name: "c",
              image: env.nodeImages!.busybox,
              command: ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done"],
            }],
          },
        },
      });
      await waitFor(async () => (await lines(core, ns, name).catch(() => [])).length >= 5, {
        what: `pod "${name}" to count`,
        timeoutMs: 60_000,
      });
    };
    try {
      // 1. Default: a backup; the pod goes on.
      await start("backup");
      const a = await checkpointCli(kube.kubeconfig, [
        "backup",
        "-n",
        ns,
        "--storage-class",
        CLASS,
        "--name",
        "cp-backup",
        "--wait",
      ]);
      assertEquals(a.code, 0, a.stderr);
      const done = (await lpm.get<PodCheckpoint>("podcheckpoints", ns, "cp-backup"))!;
      assertEquals(done.status?.freeze, undefined, "a leave-running checkpoint freezes nothing");
      const at = Date.parse(done.status!.completionTime!);
      await new Promise((r) => setTimeout(r, 1000));
      const after = (await lines(core, ns, "backup")).filter(([t]) => t > at);
      assertGreater(after.length, 5, "the pod keeps counting after its checkpoint");

      // 2. --stop: frozen whole before the dump, stopped after it.
      await start("job");
      const seen: [number, number][] = [];
      let following = true;
      const follow = (async () => {
        while (following) {
          const l = await lines(core, ns, "job").catch(() => undefined);
          if (l && l.length >= seen.length) seen.splice(0, seen.length, ...l);
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      const b = await checkpointCli(kube.kubeconfig, [
        "job",
        "-n",
        ns,
        "--storage-class",
        CLASS,
        "--name",
        "cp-stop",
        "--stop",
        "--wait",
      ]);
      assertEquals(b.code, 0, b.stderr);
      const pc = (await lpm.get<PodCheckpoint>("podcheckpoints", ns, "cp-stop"))!;
      assertEquals(pc.spec.leaveRunning, false);
      assertEquals(pc.status?.freeze?.state, "Stopped", pc.status?.message);
      const frozenAt = Date.parse(pc.status!.frozenAt!);
      const gone = await waitFor(async () => {
        try {
          await core.readNamespacedPod({ name: "job", namespace: ns });
          return undefined;
        } catch {
          return true;
        }
      }, { what: 'pod "job" to be deleted', timeoutMs: 60_000 });
      following = false;
      await follow;
      assert(gone);
      assertGreater(seen.length, 5);
      const last = seen.at(-1)!;
      // The runtime stamps a line when it reads it from the pipe: a few ms after the write.
      assert(
        last[0] <= frozenAt + 150,
        `the pod printed ${last[1]} at ${new Date(last[0]).toISOString()}, after it was frozen at ${
          pc.status!.frozenAt
        }`,
      );
      for (let i = 1; i < seen.length; i++) assertEquals(seen[i][1], seen[i - 1][1] + 1);
      console.error(
        `[modes] --stop: last value ${last[1]} at ${
          last[0] - frozenAt
        } ms from the freeze; pod deleted`,
      );
    } finally {
      await core.deleteNamespace({ name: ns }).catch(() => {});
    }
  },
});
