/** The runtime against the real API server: informers, leader election, events. */
import * as k8s from "@kubernetes/client-node";
import "../../kube/http1.ts";
import { assert, assertEquals } from "@std/assert";
import { envTest, requirePart } from "../../testing/env.ts";
import { waitFor } from "../../localenv/mod.ts";
import { Informer } from "./informer.ts";
import { LeaderElector } from "./leader_election.ts";
import { EventRecorder } from "./events.ts";
import { silentLogger } from "../../base/log.ts";

function kubeConfig(): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(requirePart("kube").kubeconfig);
  return kc;
}

async function withNamespace(fn: (ns: string, kc: k8s.KubeConfig) => Promise<void>): Promise<void> {
  const kc = kubeConfig();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const ns = `rt-${crypto.randomUUID().slice(0, 8)}`;
  await core.createNamespace({ body: { metadata: { name: ns } } });
  try {
    await fn(ns, kc);
  } finally {
    await core.deleteNamespace({ name: ns }).catch(() => {});
  }
}

const opts = { sanitizeOps: false, sanitizeResources: false };

envTest({ uses: ["kube"] }, {
  name: "Informer caches a resource and reports add, update and delete from the watch",
  ...opts,
  fn: () =>
    withNamespace(async (ns, kc) => {
      const core = kc.makeApiClient(k8s.CoreV1Api);
      await core.createNamespacedConfigMap({
        namespace: ns,
        body: { metadata: { name: "pre" }, data: { a: "0" } },
      });
      const inf = new Informer<k8s.V1ConfigMap>(kc, `/api/v1/namespaces/${ns}/configmaps`);
      const seen: string[] = [];
      inf.onChange((o, ev) => seen.push(`${ev}:${o.metadata?.name}:${o.data?.a ?? ""}`));
      await inf.start();
      try {
        assert(inf.synced);
        assertEquals(inf.get("pre", ns)?.data?.a, "0", "the first list fills the cache");
        await core.createNamespacedConfigMap({
          namespace: ns,
          body: { metadata: { name: "x" }, data: { a: "1" } },
        });
        await core.patchNamespacedConfigMap(
          { namespace: ns, name: "x", body: { data: { a: "2" } } },
          k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
        );
        await waitFor(() => inf.get("x", ns)?.data?.a === "2", {
          what: "the cache to see the update",
        });
        await core.deleteNamespacedConfigMap({ namespace: ns, name: "x" });
        await waitFor(() => inf.get("x", ns) === undefined, { what: "the cache to drop x" });
        assert(seen.includes("add:x:1"), seen.join(" "));
        assert(seen.includes("update:x:2"), seen.join(" "));
        assert(seen.some((s) => s.startsWith("delete:x")), seen.join(" "));
      } finally {
        await inf.stop();
      }
    }),
});

envTest({ uses: ["kube"] }, {
  name: "LeaderElector: one of two candidates leads; the other takes over when it steps down",
  ...opts,
  fn: () =>
    withNamespace(async (ns, kc) => {
      const mk = (identity: string) =>
        new LeaderElector(kc, {
          name: "lpm-test",
          namespace: ns,
          identity,
          // A lease far longer than the test waits for a take-over: b can lead
          // in time only if a released the lease, not because it expired.
          leaseDurationMs: 60_000,
          renewDeadlineMs: 40_000,
          retryPeriodMs: 200,
          logger: silentLogger,
        });
      const a = mk("a");
      const b = mk("b");
      const events: string[] = [];
      a.run({
        onStartedLeading: () => events.push("a+"),
        onStoppedLeading: () => events.push("a-"),
      });
      await waitFor(() => a.leading, { what: "a to lead" });
      b.run({
        onStartedLeading: () => events.push("b+"),
        onStoppedLeading: () => events.push("b-"),
      });
      await new Promise((r) => setTimeout(r, 1000));
      assert(a.leading && !b.leading, "only one leader at a time");
      const lease = await kc.makeApiClient(k8s.CoordinationV1Api).readNamespacedLease({
        name: "lpm-test",
        namespace: ns,
      });
      assertEquals(lease.spec?.holderIdentity, "a");
      await a.stop(); // releases the lease
      await waitFor(() => b.leading, {
        what: "b to take over (a released the lease; it would expire only after 60 s)",
        timeoutMs: 20_000,
      });
      const released = await kc.makeApiClient(k8s.CoordinationV1Api).readNamespacedLease({
        name: "lpm-test",
        namespace: ns,
      });
      assertEquals(released.spec?.holderIdentity, "b");
      await b.stop();
      assertEquals(events, ["a+", "b+"]);
    }),
});

envTest({ uses: ["kube"] }, {
  name: "EventRecorder records Events on an object and counts repeats",
  ...opts,
  fn: () =>
    withNamespace(async (ns, kc) => {
      const core = kc.makeApiClient(k8s.CoreV1Api);
      const cm = await core.createNamespacedConfigMap({
        namespace: ns,
        body: { metadata: { name: "target" } },
      });
      const rec = new EventRecorder(kc, "lpm-test", silentLogger);
      const obj = { apiVersion: "v1", kind: "ConfigMap", metadata: cm.metadata };
      await rec.normal(obj, "PhaseChanged", "Pending -> Checkpointing");
      await rec.normal(obj, "PhaseChanged", "Pending -> Checkpointing");
      await rec.warning(obj, "AgentUnreachable", 'Cannot reach the agent on node "node-a"');
      const list = await core.listNamespacedEvent({
        namespace: ns,
        fieldSelector: `involvedObject.uid=${cm.metadata!.uid}`,
      });
      const byReason = Object.fromEntries(list.items.map((e) => [e.reason, e]));
      assertEquals(byReason.PhaseChanged?.count, 2);
      assertEquals(byReason.PhaseChanged?.type, "Normal");
      assertEquals(byReason.AgentUnreachable?.type, "Warning");
      assertEquals(byReason.AgentUnreachable?.source?.component, "lpm-test");
    }),
});
