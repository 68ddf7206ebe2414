import type * as k8s from "@kubernetes/client-node";
import { assertEquals, assertStringIncludes } from "@std/assert";
import type { PodMigration } from "../api/mod.ts";
import { admissionResponse, decideEviction, evictionMigrationName } from "./eviction.ts";
import { webhookConfiguration, webhookSans } from "./eviction_webhook.ts";

function node(name: string, unschedulable = false): k8s.V1Node {
  return {
    metadata: { name, labels: { "kubernetes.io/hostname": name } },
    spec: { unschedulable },
    status: {
      allocatable: { cpu: "2", memory: "4Gi", pods: "110" },
      conditions: [{ type: "Ready", status: "True" }],
      nodeInfo: { containerRuntimeVersion: "containerd://2.2.9" } as k8s.V1NodeSystemInfo,
    },
  };
}

function pod(optIn = true, spec: Partial<k8s.V1PodSpec> = {}): k8s.V1Pod {
  return {
    metadata: {
      name: "counter",
      namespace: "default",
      uid: "0123abcd-4567",
      annotations: optIn ? { "lpm.my.domain/eviction-strategy": "LiveMigrate" } : {},
    },
    spec: { nodeName: "node-a", containers: [{ name: "c" }], ...spec },
    status: { phase: "Running" },
  };
}

function pm(name: string, phase?: string, message?: string): PodMigration {
  return {
    metadata: { name, namespace: "default" },
    spec: { podName: "counter" },
    status: phase ? { phase, message } : undefined,
  } as PodMigration;
}

const nodes = [node("node-a", true), node("node-b")];

Deno.test("decideEviction: pods without the annotation are evicted as usual", () => {
  assertEquals(decideEviction(pod(false), { migrations: [], nodes, pods: [] }), {
    action: "allow",
  });
});

Deno.test("decideEviction: an opted-in pod with a node that fits is migrated, once", () => {
  const name = evictionMigrationName(pod());
  assertEquals(name, "evict-counter-0123abcd");
  assertEquals(decideEviction(pod(), { migrations: [], nodes, pods: [] }), {
    action: "migrate",
    migration: name,
  });
  assertEquals(decideEviction(pod(), { migrations: [pm(name, "Transferring")], nodes, pods: [] }), {
    action: "wait",
    migration: name,
  });
  // Someone else's migration of the pod in flight: wait for it too.
  assertEquals(decideEviction(pod(), { migrations: [pm("by-hand")], nodes, pods: [] }), {
    action: "wait",
    migration: "by-hand",
  });
  assertEquals(decideEviction(pod(), { migrations: [pm(name, "Succeeded")], nodes, pods: [] }), {
    action: "allow",
  });
});

Deno.test("decideEviction: a pod lpm cannot move is evicted, and the event says why", () => {
  const failed = decideEviction(pod(), {
    migrations: [pm(evictionMigrationName(pod()), "Failed", "agent unreachable")],
    nodes,
    pods: [],
  });
  assertEquals(failed.action, "allow");
  assertStringIncludes((failed as { event: string }).event, "agent unreachable");
  const noNode = decideEviction(pod(), { migrations: [], nodes: [node("node-a")], pods: [] });
  assertStringIncludes((noNode as { event: string }).event, "no node can take the pod");
  const hostPath = decideEviction(
    pod(true, { volumes: [{ name: "h", hostPath: { path: "/" } }] }),
    {
      migrations: [],
      nodes,
      pods: [],
    },
  );
  assertStringIncludes((hostPath as { event: string }).event, "hostPath");
});

Deno.test("admissionResponse: a refusal is a 429 the API server passes on", () => {
  assertEquals(
    (admissionResponse("u1", { code: 429, message: "retry" }) as { response: unknown }).response,
    {
      uid: "u1",
      allowed: false,
      status: { code: 429, message: "retry", reason: "TooManyRequests" },
    },
  );
});

Deno.test("webhookConfiguration: Ignore on failure, dry runs honoured, the CA as caBundle", () => {
  const cc = { service: { namespace: "lpm-system", name: "lpm-controller-webhook" } };
  const w =
    (webhookConfiguration(cc, "PEM") as { webhooks: Record<string, unknown>[] }).webhooks[0];
  assertEquals(w.failurePolicy, "Ignore");
  assertEquals(w.sideEffects, "NoneOnDryRun");
  assertEquals(w.admissionReviewVersions, ["v1"]);
  assertEquals(w.clientConfig, {
    service: {
      namespace: "lpm-system",
      name: "lpm-controller-webhook",
      port: 443,
      path: "/validate-eviction",
    },
    caBundle: btoa("PEM"),
  });
  assertEquals(webhookSans(cc)[0], "lpm-controller-webhook.lpm-system.svc");
  assertEquals(webhookSans({ url: "https://127.0.0.1:9443" }), ["127.0.0.1"]);
});
