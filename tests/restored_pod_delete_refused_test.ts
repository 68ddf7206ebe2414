/**
 * Exactly once when a failing migration cannot delete its restored pod, on
 * the real nodes: a 10 Hz counter migrates node-a -> node-b; its restored
 * pod runs but never becomes ready (a readiness probe that cannot run), so
 * the migration waits in Restoring. The test then makes the
 * real API server refuse the DELETE of that pod (a ValidatingAdmissionPolicy
 * on DELETE of pods carrying the migration's label) and lowers
 * `spec.timeoutSeconds`, so the migration times out. While the DELETE is
 * refused, for longer than the freeze deadline (10 s), the source stays
 * frozen (its log does not move, SourceFrozen=True/RestoredPodNotDeleted)
 * and the migration is not Failed; once the policy is gone, the restored pod
 * is deleted, the source is thawed and continues at N+1, and the migration
 * ends Failed (Timeout).
 *
 *   LPM_TEST_ENV=<state>/env.json deno test -A tests/restored_pod_delete_refused_test.ts
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import "../kube/http1.ts";
import { assert, assertEquals } from "@std/assert";
import { envTest, testEnv } from "../testing/env.ts";
import {
  createMigration,
  kubeClients,
  openTwoNodeWorkspace,
  type TwoNodeWorkspace,
} from "../testing/e2e.ts";
import {
  assertConsecutive,
  counted,
  COUNTER,
  LogFollower,
  ms,
  readLog,
} from "../testing/counter_log.ts";
import { type KubeHttp, kubeHttp } from "../kube/http.ts";
import { waitFor } from "../localenv/mod.ts";
import { MIGRATION_LABEL } from "../controllers/restored_pod.ts";
import type { PodMigration } from "../api/mod.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const FREEZE_DEADLINE_S = 10;
/** How long the DELETE stays refused: longer than the freeze deadline. */
const REFUSED_MS = (FREEZE_DEADLINE_S + 3) * 1000;
const ADMISSION = "/apis/admissionregistration.k8s.io/v1";
const MIGRATION = "move";

const condition = (pm: PodMigration | undefined, type: string) =>
  pm?.status?.conditions?.find((c) => c.type === type);

/** The workspace, a raw API connection and the name of the test's admission policy. */
interface Ctx {
  w: TwoNodeWorkspace;
  http: KubeHttp;
  policy: string;
}

/** A request to the API server; a DELETE of what is gone is fine. */
async function api(c: Ctx, method: string, path: string, body?: unknown): Promise<void> {
  const res = await c.http.request(path, {
    method,
    headers: {
      "content-type": method === "PATCH" ? "application/merge-patch+json" : "application/json",
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok && !(method === "DELETE" && res.status === 404)) {
    throw new Error(`${method} ${path}: ${res.status} ${text}`);
  }
}

const getPm = (c: Ctx) => c.w.lpm.get<PodMigration>("podmigrations", c.w.ns, MIGRATION);

/** The 10 Hz counter on node-a, never ready; followed from its first line. */
async function startCounter(c: Ctx): Promise<LogFollower> {
  const { w } = c;
  const pod: k8s.V1Pod = {
    metadata: { name: "counter", labels: { app: "counter" } },
    spec: {
      nodeName: w.nodeA,
      automountServiceAccountToken: false,
      containers: [{
        name: "counter",
        image: w.image,
        command: COUNTER,
        // Never ready (no such program): the restored pod runs, the migration waits for it.
        // Not a TCP probe: on these nodes one to a port nothing listens on passed. Rare (10 s),
        // so that no probe's process is in the container when it is frozen.
        readinessProbe: { exec: { command: ["/never-ready"] }, periodSeconds: 10 },
      }],
    },
  };
  await w.core.createNamespacedPod({ namespace: w.ns, body: pod });
  await waitFor(async () => {
    const p = await w.core.readNamespacedPod({ name: "counter", namespace: w.ns });
    return p.status?.containerStatuses?.[0]?.state?.running;
  }, { what: "the counter to run", timeoutMs: 60_000 });
  const f = new LogFollower({ http: c.http, ns: w.ns }, "counter", "counter");
  await counted(f, 10);
  return f;
}

/** Migrates the counter and waits until its restored pod runs (unready) on node-b. */
async function restoredRunning(c: Ctx): Promise<string> {
  const { w } = c;
  await createMigration(w.lpm, { namespace: w.ns, name: MIGRATION }, {
    pod: "counter",
    target: w.nodeB,
    storageClassName: "e2e-minio",
    extra: { freezeDeadlineSeconds: FREEZE_DEADLINE_S },
  });
  const restored = await waitFor(async () => {
    const pm = await getPm(c);
    if (pm?.status?.phase === "Failed" || pm?.status?.phase === "Succeeded") {
      return `ended ${pm.status.phase}: ${pm.status.message}`;
    }
    const name = pm?.status?.restoredPodName;
    if (!name || !pm?.status?.frozenAt) return undefined;
    const p = await w.core.readNamespacedPod({ name, namespace: w.ns });
    return p.status?.containerStatuses?.[0]?.state?.running ? name : undefined;
  }, { what: "the restored pod to run", timeoutMs: 60_000, intervalMs: 250 });
  assert(!restored.startsWith("ended "), `the migration ${restored}`);
  return restored;
}

/** The API server refuses to delete the migration's pods in the namespace, from now on. */
async function refuseDeletes(c: Ctx, restored: string): Promise<void> {
  await api(c, "POST", `${ADMISSION}/validatingadmissionpolicies`, {
    apiVersion: "admissionregistration.k8s.io/v1",
    kind: "ValidatingAdmissionPolicy",
    metadata: { name: c.policy },
    spec: {
      failurePolicy: "Fail",
      matchConstraints: {
        resourceRules: [{
          apiGroups: [""],
          apiVersions: ["v1"],
          operations: ["DELETE"],
          resources: ["pods"],
        }],
      },
      validations: [{
        expression: `request.operation != 'DELETE' || !has(oldObject.metadata.labels) || ` +
          `!('${MIGRATION_LABEL}' in oldObject.metadata.labels) || ` +
          `oldObject.metadata.labels['${MIGRATION_LABEL}'] != '${MIGRATION}'`,
        message: "the test refuses to delete the restored pod",
      }],
    },
  });
  await api(c, "POST", `${ADMISSION}/validatingadmissionpolicybindings`, {
    apiVersion: "admissionregistration.k8s.io/v1",
    kind: "ValidatingAdmissionPolicyBinding",
    metadata: { name: c.policy },
    spec: {
      policyName: c.policy,
      validationActions: ["Deny"],
      matchResources: {
        namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": c.w.ns } },
      },
    },
  });
  // The API server loads policies asynchronously: a dry-run DELETE says when it is in force.
  await waitFor(async () => {
    const res = await c.http.request(
      `/api/v1/namespaces/${c.w.ns}/pods/${restored}?dryRun=All`,
      { method: "DELETE" },
    );
    return (await res.text()).includes("the test refuses");
  }, { what: "the policy to refuse a (dry-run) DELETE", timeoutMs: 20_000, intervalMs: 250 });
}

async function dropPolicy(c: Ctx): Promise<void> {
  await api(c, "DELETE", `${ADMISSION}/validatingadmissionpolicybindings/${c.policy}`);
  await api(c, "DELETE", `${ADMISSION}/validatingadmissionpolicies/${c.policy}`);
}

/**
 * Times the migration out and checks it, for longer than the freeze
 * deadline: not Failed, the source frozen (its log still), the restored pod
 * running, a Warning Event naming it. Returns the source's last value.
 */
async function failWhileRefused(c: Ctx, f: LogFollower, restored: string): Promise<number> {
  await api(c, "PATCH", `/apis/lpm.my.domain/v1/namespaces/${c.w.ns}/podmigrations/${MIGRATION}`, {
    spec: { timeoutSeconds: 10 },
  });
  const held = await waitFor(async () => {
    const pm = await getPm(c);
    const reason = condition(pm, "SourceFrozen")?.reason;
    return reason === "RestoredPodNotDeleted" || pm?.status?.phase === "Failed" ? pm : undefined;
  }, { what: "the migration to fail with its restored pod refused", timeoutMs: 30_000 });
  assertEquals(
    held.status?.phase,
    "Restoring",
    `Failed with its restored pod still there, the source ${
      condition(held, "SourceFrozen")?.reason
    }: ${held.status?.message}`,
  );
  const frozenAt = held.status!.frozenAt!;
  const heldAt = Date.now();
  console.error(`[delete refused] ${held.status?.message}`);
  while (Date.now() - heldAt < REFUSED_MS) {
    const pm = await getPm(c);
    assertEquals(pm?.status?.phase, "Restoring", `while refused: ${pm?.status?.message}`);
    assertEquals(condition(pm, "SourceFrozen")?.status, "True", "SourceFrozen while refused");
    assertEquals(condition(pm, "Succeeded")?.reason, "Timeout");
    await sleep(500);
  }
  const after = f.lines.filter((l) => ms(l.ts) > ms(frozenAt) + 300);
  assertEquals(after, [], `the source printed while the restored pod's DELETE was refused`);
  // The restored copy runs meanwhile: it is what must never run beside the source.
  const newer = (await readLog({ http: c.http, ns: c.w.ns }, restored, "counter"))
    .filter((l) => ms(l.ts) > heldAt);
  assert(newer.length > 0, "the restored pod did not count while the DELETE was refused");
  const events = await c.w.core.listNamespacedEvent({ namespace: c.w.ns });
  const warn = events.items.find((e) => e.reason === "RestoredPodNotDeleted");
  assert(warn?.message?.includes(restored), `Event RestoredPodNotDeleted: ${warn?.message}`);
  return f.values.at(-1)!;
}

/** Once the DELETE passes: the restored pod goes, the source thaws and goes on, Failed. */
async function failsOnceDeleted(c: Ctx, f: LogFollower, n: number): Promise<void> {
  const failed = await waitFor(async () => {
    const pm = await getPm(c);
    return pm?.status?.phase === "Failed" ? pm : undefined;
  }, { what: "the migration to end Failed", timeoutMs: 30_000 });
  assertEquals(condition(failed, "Succeeded")?.reason, "Timeout");
  assertEquals(condition(failed, "SourceFrozen")?.reason, "Thawed");
  await waitFor(() => f.values.length >= n + 10, {
    what: "the source to count 10 more after the thaw",
    timeoutMs: 20_000,
  });
  assertEquals(f.problems, []);
  assertConsecutive(f.values, "the source's log across the freeze and the thaw");
  const pods = (await c.w.core.listNamespacedPod({ namespace: c.w.ns })).items;
  assertEquals(pods.map((p) => p.metadata?.name), ["counter"], "only the source is left");
  assertEquals(pods[0].status?.containerStatuses?.[0]?.restartCount, 0);
  const at = (v: number) => ms(f.lines.find((l) => l.text.trim() === String(v))!.ts);
  console.error(
    `[delete refused] the source paused ${at(n + 1) - at(n)} ms at ${n}, then ${n + 1}`,
  );
}

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name: "restored pod DELETE refused: a failing migration keeps the source frozen past the " +
    "freeze deadline and is not Failed; once the DELETE passes, the source thaws and continues",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const env = testEnv();
    const w = await openTwoNodeWorkspace(env, "rpdr");
    const c: Ctx = {
      w,
      http: kubeHttp(kubeClients(env.kube!.kubeconfig).kc),
      policy: `lpm-test-refuse-${w.ns}`,
    };
    let f: LogFollower | undefined;
    try {
      f = await startCounter(c);
      const restored = await restoredRunning(c);
      await refuseDeletes(c, restored);
      const n = await failWhileRefused(c, f, restored);
      await dropPolicy(c);
      await failsOnceDeleted(c, f, n);
    } finally {
      await dropPolicy(c).catch((err) => console.error(`[delete refused] cleanup: ${err}`));
      await f?.stop();
      await w.core.deleteNamespace({ name: w.ns }).catch(() => {});
      c.http.close();
    }
  },
});
