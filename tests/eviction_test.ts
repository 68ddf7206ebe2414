/**
 * Issue 18 on the real nodes: eviction becomes migration through lpm's
 * `pods/eviction` webhook, so a plain `kubectl drain` moves the pods that
 * opted in and evicts the rest; a webhook nobody answers never blocks an
 * eviction (failurePolicy Ignore).
 */
import * as k8s from "@kubernetes/client-node";
import "../kube/http1.ts";
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { openTwoNodeWorkspace, type TwoNodeWorkspace } from "../testing/e2e.ts";
import { envTest, testEnv } from "../testing/env.ts";
import { counterCommand, counterValues } from "../testing/workloads.ts";
import { freePort, toolPath, waitFor } from "../localenv/mod.ts";
import { apiStatus } from "../kube/lpm_client.ts";
import {
  EVICTION_STORAGE_CLASS_ANNOTATION,
  EVICTION_STRATEGY_ANNOTATION,
  LIVE_MIGRATE,
  type PodMigration,
} from "../api/mod.ts";
import { WEBHOOK_CONFIGURATION, webhookConfiguration } from "../controllers/eviction_webhook.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const CLASS = "e2e-minio";
const USES = { uses: ["kube", "minio", "registry", "nodes", "lpm"] as const };

type Ctx = TwoNodeWorkspace;

function setup(): Promise<Ctx> {
  return openTwoNodeWorkspace(testEnv(), "evict", CLASS);
}

/** A bare counter pod (drain needs --force for it) on `node`, opted in or not. */
async function counterPod(
  c: Ctx,
  name: string,
  opt: { optIn: boolean; node: string; hostPath?: boolean },
): Promise<void> {
  const annotations = opt.optIn
    ? { [EVICTION_STRATEGY_ANNOTATION]: LIVE_MIGRATE, [EVICTION_STORAGE_CLASS_ANNOTATION]: CLASS }
    : undefined;
  await c.core.createNamespacedPod({
    namespace: c.ns,
    body: {
      metadata: { name, labels: { app: name }, annotations },
      spec: {
        nodeName: opt.node,
        terminationGracePeriodSeconds: 1,
        containers: [{
          name: "counter",
          image: c.image,
          command: counterCommand(0.3),
          ...(opt.hostPath ? { volumeMounts: [{ name: "host", mountPath: "/host" }] } : {}),
        }],
        ...(opt.hostPath
          ? { volumes: [{ name: "host", hostPath: { path: "/tmp", type: "Directory" } }] }
          : {}),
      },
    },
  });
}

async function counting(c: Ctx, pod: string): Promise<void> {
  await waitFor(async () => {
    const p = await c.core.readNamespacedPod({ name: pod, namespace: c.ns });
    if (p.status?.phase !== "Running") return false;
    return ((await counterValues(c.core, c.ns, pod)).at(-1) ?? 0) >= 3;
  }, { what: `pod "${pod}" to count`, timeoutMs: 90_000 });
}

/** The restored counter goes on from the checkpoint: no gap, no repeat. */
async function continues(c: Ctx, restored: string): Promise<void> {
  const replayed = await counterValues(c.core, c.ns, restored);
  await new Promise((r) => setTimeout(r, 1500));
  const all = await counterValues(c.core, c.ns, restored);
  for (let i = 1; i < all.length; i++) {
    assertEquals(all[i], all[i - 1] + 1, `pod "${restored}": ${all.slice(i - 2, i + 2)}`);
  }
  assert(all.length > replayed.length, `pod "${restored}" prints new values`);
}

/** Evicts a pod through the Eviction API; the HTTP status (201 evicted). */
async function evict(
  c: Ctx,
  name: string,
  dryRun = false,
): Promise<{ status: number; msg: string }> {
  try {
    await c.core.createNamespacedPodEviction({
      name,
      namespace: c.ns,
      body: { apiVersion: "policy/v1", kind: "Eviction", metadata: { name, namespace: c.ns } },
      ...(dryRun ? { dryRun: "All" } : {}),
    });
    return { status: 201, msg: "" };
  } catch (err) {
    return { status: apiStatus(err) ?? 0, msg: String((err as { body?: string }).body ?? err) };
  }
}

async function gone(c: Ctx, name: string): Promise<void> {
  await waitFor(async () => {
    try {
      const p = await c.core.readNamespacedPod({ name, namespace: c.ns });
      return p.metadata?.deletionTimestamp !== undefined;
    } catch {
      return true;
    }
  }, { what: `pod "${name}" to go`, timeoutMs: 60_000 });
}

async function uncordon(c: Ctx, node: string): Promise<void> {
  await c.core.patchNode(
    { name: node, body: { spec: { unschedulable: false } } },
    k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
  ).catch(() => {});
}

/** `kubectl drain` with the environment's kubeconfig; output and wall time. */
async function kubectlDrain(node: string): Promise<{ code: number; out: string; ms: number }> {
  const start = Date.now();
  const r = await new Deno.Command("kubectl", {
    args: [
      `--kubeconfig=${testEnv().kube!.kubeconfig}`,
      "drain",
      node,
      "--ignore-daemonsets",
      "--force",
      "--timeout=300s",
    ],
    env: { PATH: toolPath() },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
  return { code: r.code, out, ms: Date.now() - start };
}

envTest(USES, {
  name:
    "eviction: kubectl drain node-a moves three opted-in counters to node-b with no gap and evicts the ordinary pod",
  ...opts,
  async fn() {
    const c = await setup();
    const names = ["opted-1", "opted-2", "opted-3"];
    try {
      for (const n of names) await counterPod(c, n, { optIn: true, node: c.nodeA });
      await counterPod(c, "ordinary", { optIn: false, node: c.nodeA });
      for (const n of [...names, "ordinary"]) await counting(c, n);
      // A dry run is refused as the real eviction would be, and creates nothing.
      const dry = await evict(c, "opted-1", true);
      assertEquals(dry.status, 429, dry.msg);
      assertStringIncludes(dry.msg, `lpm is migrating pod ${c.ns}/opted-1`);
      assertEquals((await c.lpm.list<PodMigration>("podmigrations", c.ns)).length, 0);

      const r = await kubectlDrain(c.nodeA);
      console.log(r.out);
      assertEquals(r.code, 0, r.out);
      console.log(`kubectl drain wall time for three counters: ${(r.ms / 1000).toFixed(1)} s`);
      assertStringIncludes(r.out, "lpm is migrating pod");
      const pods = (await c.core.listNamespacedPod({ namespace: c.ns })).items
        .filter((p) => !p.metadata?.deletionTimestamp);
      assert(!pods.some((p) => p.spec?.nodeName === c.nodeA), "nothing is left on node-a");
      assert(!pods.some((p) => p.metadata?.name === "ordinary"), "the ordinary pod was evicted");
      const pms = await c.lpm.list<PodMigration>("podmigrations", c.ns);
      assertEquals(pms.map((m) => m.spec.podName).sort(), names, "one migration per opted-in pod");
      for (const pm of pms) {
        assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
        assertEquals(pm.spec.targetNode, undefined);
        assertEquals(pm.status?.targetNode, c.nodeB);
        const p = pods.find((x) => x.metadata?.name === pm.status?.restoredPodName);
        assertEquals(p?.spec?.nodeName, c.nodeB);
        await continues(c, pm.status!.restoredPodName!);
      }
    } finally {
      await uncordon(c, c.nodeA);
      await c.core.deleteNamespace({ name: c.ns }).catch(() => {});
    }
  },
});

envTest(USES, {
  name:
    "eviction: an opted-in pod lpm cannot move is evicted with the reason as an Event; a dead webhook blocks nothing",
  ...opts,
  async fn() {
    const c = await setup();
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(testEnv().kube!.kubeconfig);
    const admission = kc.makeApiClient(k8s.AdmissionregistrationV1Api);
    const dead = `${WEBHOOK_CONFIGURATION}-dead-${c.ns}`;
    try {
      // hostPath: unsupported, so the eviction goes through and the pod says why.
      await counterPod(c, "pinned", { optIn: true, node: c.nodeB, hostPath: true });
      await counting(c, "pinned");
      const r = await evict(c, "pinned");
      assertEquals(r.status, 201, r.msg);
      await gone(c, "pinned");
      const events = await waitFor(async () => {
        const evs = (await c.core.listNamespacedEvent({ namespace: c.ns })).items
          .filter((e) => e.involvedObject.name === "pinned" && e.reason === "EvictionNotMigrated");
        return evs.length ? evs : undefined;
      }, { what: "the EvictionNotMigrated event", timeoutMs: 10_000 });
      assertStringIncludes(events[0].message ?? "", "hostPath");
      assertEquals((await c.lpm.list<PodMigration>("podmigrations", c.ns)).length, 0);

      // A copy of lpm's configuration pointing where nothing listens: as if lpm were down.
      const live = await admission.readValidatingWebhookConfiguration({
        name: WEBHOOK_CONFIGURATION,
      });
      const ca = atob(live.webhooks![0].clientConfig.caBundle!);
      const body = webhookConfiguration({ url: `https://127.0.0.1:${freePort()}` }, ca) as
        & k8s.V1ValidatingWebhookConfiguration
        & { metadata: { name: string } };
      body.metadata.name = dead;
      await admission.createValidatingWebhookConfiguration({ body });
      await counterPod(c, "ordinary", { optIn: false, node: c.nodeB });
      await counting(c, "ordinary");
      const start = Date.now();
      const e = await evict(c, "ordinary");
      assertEquals(e.status, 201, e.msg);
      await gone(c, "ordinary");
      console.log(`eviction past a dead webhook took ${Date.now() - start} ms`);
    } finally {
      await admission.deleteValidatingWebhookConfiguration({ name: dead }).catch(() => {});
      await c.core.deleteNamespace({ name: c.ns }).catch(() => {});
    }
  },
});
