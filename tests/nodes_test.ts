/**
 * The platform path proven with the ecosystem's own tools on two real nodes
 * (kubelet 1.34 + containerd 2.2): a counter pod on node-a is checkpointed
 * through the API server's node proxy, checkpointctl reads the archive, the
 * archive becomes an OCI checkpoint image in the harness registry, and a pod on
 * node-b started from that image continues the count.
 *
 * Needs an environment with two nodes:
 *   deno task cluster:up --nodes 2
 *   LPM_TEST_ENV=.lpm/env.json deno task test tests/nodes_test.ts
 * @module
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { envTest, needing, requirePart, testEnv } from "../testing/env.ts";
import { counterScript, kubectl, pushImage, tool, waitFor } from "../localenv/mod.ts";
import type { NodeInfo } from "../localenv/mod.ts";

const test = needing({ uses: ["kube", "nodes"] });

/** The environment's nodes, or an error saying how to get them (never a silent skip). */
function requireNodes(count: number): { nodes: NodeInfo[]; busybox: string } {
  const env = testEnv();
  if (!env.nodes || env.nodes.length < count || !env.nodeImages) {
    throw new Error(
      `This test needs an environment with ${count} nodes, but it has ${env.nodes?.length ?? 0}: ` +
        `start one with "deno task cluster:up --nodes ${count}" and run ` +
        `"LPM_TEST_ENV=.lpm/env.json deno task test tests/nodes_test.ts"`,
    );
  }
  return { nodes: env.nodes, busybox: env.nodeImages.busybox };
}

interface LogLine {
  at: number;
  value: number;
}

/** Pod log lines `<RFC3339Nano> <n>` as numbers. */
async function counterLog(kubeconfig: string, ns: string, pod: string): Promise<LogLine[]> {
  const out = await kubectl(kubeconfig, ["-n", ns, "logs", pod, "--timestamps"]);
  return out.split("\n").filter(Boolean).map((l) => {
    const [ts, v] = l.split(" ");
    return { at: Date.parse(ts), value: Number(v) };
  }).filter((l) => Number.isFinite(l.value));
}

async function podJson(kubeconfig: string, ns: string, pod: string) {
  return JSON.parse(await kubectl(kubeconfig, ["-n", ns, "get", "pod", pod, "-o", "json"]));
}

async function waitRunning(kubeconfig: string, ns: string, pod: string): Promise<void> {
  let last = "";
  await waitFor(async () => {
    const p = await podJson(kubeconfig, ns, pod);
    const s = p.status?.containerStatuses?.[0]?.state;
    last = JSON.stringify(s ?? p.status?.phase);
    return p.status?.phase === "Running" && s?.running !== undefined;
  }, { what: `pod "${ns}/${pod}" Running`, timeoutMs: 90_000, intervalMs: 300 }).catch((err) => {
    throw new Error(`${(err as Error).message}; last state: ${last}`);
  });
}

function podManifest(
  ns: string,
  name: string,
  node: string,
  image: string,
  command?: string[],
): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: ns, labels: { app: "lpm-nodes-test" } },
    spec: {
      nodeName: node,
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 0,
      restartPolicy: "Never",
      containers: [{ name: "counter", image, ...(command ? { command } : {}) }],
    },
  });
}

test("nodes: node-a and node-b are Ready kubelets on containerd with distinct InternalIPs", async () => {
  const kube = requirePart("kube");
  const { nodes } = requireNodes(2);
  const list = JSON.parse(await kubectl(kube.kubeconfig, ["get", "nodes", "-o", "json"]));
  // deno-lint-ignore no-explicit-any
  type Json = Record<string, any>;
  const byName = new Map<string, Json>(list.items.map((n: Json) => [n.metadata.name, n]));
  for (const n of nodes.slice(0, 2)) {
    const node = byName.get(n.name);
    assert(node, `node "${n.name}" is not registered`);
    const ready = node.status.conditions.find((c: { type: string }) => c.type === "Ready");
    assertEquals(ready?.status, "True", `node "${n.name}" is not Ready: ${ready?.message}`);
    assertStringIncludes(node.status.nodeInfo.containerRuntimeVersion, "containerd://2.");
    const ip = node.status.addresses.find((a: { type: string }) => a.type === "InternalIP");
    assertEquals(ip?.address, n.ip);
    assertEquals(node.status.daemonEndpoints.kubeletEndpoint.Port, n.kubeletPort);
  }
  assert(nodes[0].ip !== nodes[1].ip, "the two nodes share an IP");
});

envTest({ uses: ["kube", "registry", "nodes"] }, {
  name:
    "nodes: checkpoint on node-a via the API server, restore from an OCI checkpoint image on node-b",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const kube = requirePart("kube");
    const registry = requirePart("registry");
    const { nodes, busybox } = requireNodes(2);
    const [a, b] = nodes;
    const suffix = crypto.randomUUID().slice(0, 8);
    const ns = `lpm-nodes-${suffix}`;
    const kc = kube.kubeconfig;
    await kubectl(kc, ["create", "namespace", ns]);
    let archive = "";
    let imageDigest = "";
    try {
      // 1. A counter on node-a.
      await kubectl(
        kc,
        ["apply", "-f", "-"],
        podManifest(ns, "counter", a.name, busybox, [
          "/bin/sh",
          "-c",
          counterScript(0.2),
        ]),
      );
      await waitRunning(kc, ns, "counter");
      await waitFor(async () => (await counterLog(kc, ns, "counter")).length >= 5, {
        what: "the counter to log 5 values",
        timeoutMs: 30_000,
      });

      // 2. The kubelet checkpoint API, through the API server's node proxy.
      const before = Date.now();
      const res = JSON.parse(
        await kubectl(kc, [
          "create",
          "--raw",
          `/api/v1/nodes/${a.name}/proxy/checkpoint/${ns}/counter/counter?timeout=60`,
          "-f",
          "/dev/null",
        ]),
      );
      const after = Date.now();
      assertEquals(res.items?.length, 1, `checkpoint answer: ${JSON.stringify(res)}`);
      archive = res.items[0];
      assert(
        archive.startsWith(`${a.checkpointDir}/checkpoint-counter_${ns}-counter-`),
        `archive path "${archive}" is not in ${a.checkpointDir}`,
      );
      assert((await Deno.stat(archive)).size > 0, `archive "${archive}" is empty`);
      const lastBefore = (await counterLog(kc, ns, "counter")).filter((l) => l.at < before)
        .at(-1)!.value;

      // 3. checkpointctl reads it.
      const inspect = await new Deno.Command(tool("checkpointctl"), {
        args: ["inspect", "--format", "json", archive],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const inspectText = new TextDecoder().decode(inspect.stdout);
      assert(
        inspect.success,
        `checkpointctl inspect failed: ${new TextDecoder().decode(inspect.stderr)}`,
      );
      const info = JSON.parse(inspectText);
      const entry = Array.isArray(info) ? info[0] : info;
      assertEquals(entry.container_name ?? entry.name, "counter", inspectText);
      assertEquals(entry.engine, "containerd", inspectText);

      // 4. The archive as an OCI checkpoint image: the archive's files are the
      // one layer; containerd recognizes the image by the manifest annotation.
      const image = await pushImage(registry.host, `lpm-test/counter-checkpoint:${suffix}`, {
        layers: [{ path: archive }],
        annotations: {
          "org.criu.checkpoint.container.name": "counter",
          "io.kubernetes.cri-o.annotations.checkpoint.name": "counter",
        },
      });
      imageDigest = image.digest;

      // 5. A pod on node-b from that image.
      await kubectl(
        kc,
        ["apply", "-f", "-"],
        podManifest(ns, "counter-restored", b.name, image.reference),
      );
      await waitRunning(kc, ns, "counter-restored");
      const pod = await podJson(kc, ns, "counter-restored");
      assertEquals(pod.spec.nodeName, b.name);
      await waitFor(
        async () => (await counterLog(kc, ns, "counter-restored")).some((l) => l.at > after),
        { what: "the restored counter to log", timeoutMs: 30_000 },
      );
      // containerd copies the checkpointed log into the new container's log, so
      // the values logged after the restore are those later than the checkpoint.
      const restored = (await counterLog(kc, ns, "counter-restored")).filter((l) => l.at > after);
      const first = restored[0].value;
      assert(first > 1, `the restored counter restarted at ${first}`);
      assert(
        first > lastBefore,
        `the restored counter logged ${first} first, not more than ${lastBefore} (last value before the checkpoint)`,
      );
      assert(
        first <= lastBefore + 10,
        `the restored counter jumped from ${lastBefore} to ${first}: not a continuation`,
      );
      for (let i = 1; i < restored.length; i++) {
        assertEquals(restored[i].value, restored[i - 1].value + 1, "the restored count skips");
      }
    } finally {
      await kubectl(kc, ["delete", "namespace", ns, "--wait=false"]).catch(() => {});
      if (archive) await Deno.remove(archive).catch(() => {});
      if (imageDigest) {
        const r = await fetch(
          `http://${registry.host}/v2/lpm-test/counter-checkpoint/manifests/${imageDigest}`,
          { method: "DELETE" },
        );
        await r.body?.cancel();
      }
    }
  },
});
