import { assertEquals, assertRejects } from "@std/assert";
import { type AgentPod, parseOverrides, resolveAgent } from "./discovery.ts";

function lister(items: AgentPod[]) {
  const seen: unknown[] = [];
  return {
    seen,
    listNamespacedPod(req: { namespace: string; labelSelector?: string; fieldSelector?: string }) {
      seen.push(req);
      return Promise.resolve({ items });
    },
  };
}

const ready = (node: string, ip: string): AgentPod => ({
  metadata: { name: `lpm-agent-${node}` },
  spec: { nodeName: node },
  status: { podIP: ip, phase: "Running", conditions: [{ type: "Ready", status: "True" }] },
});

Deno.test("discovery: an override wins over the cluster", async () => {
  const l = lister([ready("a", "10.0.0.1")]);
  assertEquals(
    await resolveAgent(l, "a", { overrides: { a: "127.0.0.1:7443" } }),
    "127.0.0.1:7443",
  );
  assertEquals(l.seen.length, 0);
});

Deno.test("discovery: the Ready agent pod on the node, at podIP:7443", async () => {
  const l = lister([ready("a", "10.0.0.1")]);
  assertEquals(await resolveAgent(l, "a"), "10.0.0.1:7443");
  assertEquals(l.seen, [{
    namespace: "lpm-system",
    labelSelector: "app.kubernetes.io/name=lpm-agent",
    fieldSelector: "spec.nodeName=a",
  }]);
  assertEquals(await resolveAgent(lister([ready("a", "fd00::1")]), "a"), "[fd00::1]:7443");
});

Deno.test("discovery: no pod, or a pod not Ready, is a clear error", async () => {
  await assertRejects(() => resolveAgent(lister([]), "b"), Error, 'No agent pod on node "b"');
  const notReady = { ...ready("a", "10.0.0.1"), status: { phase: "Pending" } };
  await assertRejects(() => resolveAgent(lister([notReady]), "a"), Error, "is not Ready");
  await assertRejects(() => resolveAgent(undefined, "a"), Error, "no override and no cluster");
});

Deno.test("discovery: parseOverrides", () => {
  assertEquals(parseOverrides(["a=127.0.0.1:1,b=h:2", "c=[::1]:3"]), {
    a: "127.0.0.1:1",
    b: "h:2",
    c: "[::1]:3",
  });
  let msg = "";
  try {
    parseOverrides(["nonsense"]);
  } catch (e) {
    msg = (e as Error).message;
  }
  assertEquals(msg, 'Agent override "nonsense" is invalid: expected "<node>=<host>:<port>"');
});

Deno.test("discovery: a cache of agent pods is read from memory, by label and node", async () => {
  const agent = (node: string, ip: string, labels = { "app.kubernetes.io/name": "lpm-agent" }) => {
    const p = ready(node, ip);
    p.metadata = { ...p.metadata, namespace: "lpm-system", labels };
    return p;
  };
  const pods = [
    agent("a", "10.0.0.1", { "app.kubernetes.io/name": "other" }),
    agent("a", "10.0.0.2"),
  ];
  const asked: (string | undefined)[] = [];
  const cache = {
    list: (ns?: string) => {
      asked.push(ns);
      return pods.filter((p) => p.metadata?.namespace === ns);
    },
  };
  assertEquals(await resolveAgent(cache, "a"), "10.0.0.2:7443");
  assertEquals(asked, ["lpm-system"]);
  await assertRejects(() => resolveAgent(cache, "b"), Error, 'No agent pod on node "b"');
});
