/**
 * How many API requests one counter migration costs the controller, read
 * from its own `lpm_api_requests_total{verb,resource}` on the real local
 * cluster (real API server, two real nodes, agents and the controller).
 *
 * Measured on one counter pod moving node-a -> node-b, controller requests
 * between the PodMigration's creation and its finalizer's removal:
 *   before the informer caches (every step GETs what it reads): 387, of which
 *     ~280 were the retention reconciler re-running on its own status patches
 *     (31 passes of: get class, list pm/pc/cc/pr, get secret, patch status,
 *     and the class reconciler's get) and ~105 the migration's own: 33 get
 *     podcheckpoints, 25 get podmigrations, 24 get pods, 13 get
 *     containercheckpoints, 3 get nodes, 13 create events, 21 writes
 *     (status and finalizer patches, 3 creates, 1 delete).
 *   after (reads from the caches, writes through the API; retention woken
 *   only by a new spec or a new checkpoint): 55, of which 8 reads (3 gets
 *   confirming a miss before a create, the secret read and 4 lists of the
 *   one retention pass the new checkpoint starts); by verb and resource: 13 create events, 13 patch
 *   podcheckpoints/status, 7 patch podmigrations/status, 6 patch
 *   containercheckpoints/status, 2 patch podmigrations, 1 each of patch
 *   podcheckpoints, create podcheckpoints/containercheckpoints/pods, delete
 *   pods, get podcheckpoints/containercheckpoints/pods/secrets, list
 *   podmigrations/podcheckpoints/containercheckpoints/podrestores, patch
 *   checkpointstorageclasses/status.
 *   then (issue 21: no status patch that changes nothing, no GET before a
 *   create, one patch per phase step, a migration's checkpoints speak through
 *   its Events): 24 on 2026-11-30, 0 reads: 8 create events, 5 patch
 *   podmigrations/status, 3 patch podcheckpoints/status, 2 patch
 *   containercheckpoints/status, 2 patch podmigrations (its finalizer on and
 *   off), 1 each of create podcheckpoints/containercheckpoints/pods, delete
 *   pods. The retention pass the new checkpoint wakes (3 s later: a secret
 *   read, 4 lists, a class status patch) ran after the window that time.
 * The bounds: issue 21's budget (30), plus that retention pass when a slow
 * restore lets it fall inside the window, plus a little for what a slow
 * machine adds (a progress patch per 2 s of a slow checkpoint, a freeze
 * renewal); not room for a return to reading the API at every step (~100
 * gets) or for patches that change nothing (~20).
 */
import * as k8s from "@kubernetes/client-node";
import { assert, assertEquals } from "@std/assert";
import { envTest, requirePart, testEnv } from "../testing/env.ts";
import { createMinioClass, createNamespace, waitFor } from "../localenv/mod.ts";
import { LpmClient } from "../kube/lpm_client.ts";
import { makeApiClient } from "../kube/api_client.ts";
import type { ContainerCheckpoint, PodMigration } from "../api/mod.ts";
import { ALLOCATOR_ENV } from "../base/allocator_env.ts";

const CLASS = "e2e-minio";
/** At most this many API requests for one counter migration (see the header). */
const MAX_REQUESTS = 40;
/** At most this many gets and lists among them. */
const MAX_READS = 6;

/** The controller's `metric` series, by the values of `keys` joined with a space. */
async function series(port: number, metric: string, keys: string[]): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = new RegExp(`^${metric}\\{(.*)\\} (\\d+)$`).exec(line);
    if (!m) continue;
    const labels = Object.fromEntries(
      [...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]),
    );
    out.set(keys.map((k) => labels[k]).join(" "), Number(m[2]));
  }
  return out;
}

/** The controller's lpm_api_requests_total series, by `verb resource`. */
function apiRequests(port: number): Promise<Map<string, number>> {
  return series(port, "lpm_api_requests_total", ["verb", "resource"]);
}

/** Bytes of checkpoint archives the controller saw stored for `cls` (lpm_checkpoint_bytes_total). */
async function checkpointBytes(port: number, cls: string): Promise<number> {
  return (await series(port, "lpm_checkpoint_bytes_total", ["class"])).get(cls) ?? 0;
}

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name: "api requests: one counter migration costs the controller a bounded number of requests",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const env = testEnv();
    const kube = requirePart("kube");
    if ((env.nodes?.length ?? 0) < 2 || !env.lpm?.controller?.healthPort) {
      throw new Error(
        'This test needs 2 nodes and lpm (agents + controller with its health port): run it with "deno task test"',
      );
    }
    const port = env.lpm.controller.healthPort;
    // The processes run with lpm's allocator settings (base/allocator_env.ts).
    // Found by their command lines: a fault test may have restarted them under new pids.
    const lpmPids = [...Deno.readDirSync("/proc")].map((e) => e.name).filter((n) => /^\d+$/.test(n))
      .filter((pid) => {
        try {
          const cmd = Deno.readTextFileSync(`/proc/${pid}/cmdline`);
          return cmd.includes(env.dir) && /(controllers|agent)\/main\.ts/.test(cmd);
        } catch {
          return false; // gone meanwhile
        }
      });
    assert(lpmPids.length >= 3, `the controller and 2 agents of ${env.dir}: found ${lpmPids}`);
    for (const pid of lpmPids) {
      const environ = Deno.readTextFileSync(`/proc/${pid}/environ`).split("\0");
      for (const [k, v] of Object.entries(ALLOCATOR_ENV)) {
        assert(environ.includes(`${k}=${v}`), `process ${pid} runs without ${k}=${v}`);
      }
    }
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kube.kubeconfig);
    const core = makeApiClient(kc, k8s.CoreV1Api);
    const lpm = new LpmClient(kc);
    const ns = `apireq-${crypto.randomUUID().slice(0, 6)}`;
    await createNamespace(core, ns);
    try {
      await createMinioClass(core, lpm, {
        name: CLASS,
        minio: requirePart("minio"),
        prefix: "e2e/",
        repository: `${requirePart("registry").host}/lpm/e2e`,
        reuse: true,
      });
      await core.createNamespacedPod({
        namespace: ns,
        body: {
          metadata: { name: "counter" },
          spec: {
            nodeName: env.nodes![0].name,
            containers: [{
              name: "counter",
              image: env.nodeImages!.busybox,
              command: ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i; sleep 0.3; done"],
            }],
          },
        },
      });
      await waitFor(async () => {
        const p = await core.readNamespacedPod({ name: "counter", namespace: ns });
        return p.status?.phase === "Running";
      }, { what: "the counter pod to run", timeoutMs: 60_000 });

      const bytesBefore = await checkpointBytes(port, CLASS);
      const before = await apiRequests(port);
      await lpm.create("podmigrations", ns, {
        apiVersion: "lpm.my.domain/v1",
        kind: "PodMigration",
        metadata: { name: "move", namespace: ns },
        spec: { podName: "counter", targetNode: env.nodes![1].name, storageClassName: CLASS },
      });
      const pm = await waitFor(async () => {
        const pm = await lpm.get<PodMigration>("podmigrations", ns, "move");
        return pm?.status?.phase === "Succeeded" || pm?.status?.phase === "Failed" ? pm : undefined;
      }, { what: "the migration to finish", timeoutMs: 120_000, intervalMs: 250 });
      assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
      // Its last step lets the finalizer go.
      await waitFor(
        async () => !(await lpm.get("podmigrations", ns, "move"))?.metadata?.finalizers?.length,
        { what: "the migration's finalizer to go", timeoutMs: 30_000 },
      );
      const after = await apiRequests(port);
      // The dashboard's "bytes moved": the archive sizes the checkpoints recorded.
      const ccs = await lpm.list<ContainerCheckpoint>("containercheckpoints", ns);
      const stored = ccs.reduce((s, cc) => s + (cc.status?.archive?.size ?? 0), 0);
      assert(stored > 0, "the migration's container checkpoints record their archive sizes");
      assertEquals((await checkpointBytes(port, CLASS)) - bytesBefore, stored);

      const delta = [...after].map(([k, v]) => [k, v - (before.get(k) ?? 0)] as const)
        .filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
      const total = delta.reduce((s, [, n]) => s + n, 0);
      console.log(
        `API requests of one counter migration: ${total}\n` +
          delta.map(([k, n]) => `  ${String(n).padStart(4)} ${k}`).join("\n"),
      );
      assert(total > 0, "the controller counts its API requests");
      const reads = delta.filter(([k]) => /^(get|list) /.test(k)).reduce((s, [, n]) => s + n, 0);
      assert(
        reads <= MAX_READS,
        `one counter migration made ${reads} reads (at most ${MAX_READS} expected): ` +
          "do the reconcilers read the API instead of the informer caches?",
      );
      assert(
        total <= MAX_REQUESTS,
        `one counter migration made ${total} API requests (at most ${MAX_REQUESTS} expected)`,
      );
    } finally {
      await core.deleteNamespace({ name: ns }).catch(() => {});
    }
  },
});
