/**
 * A real CRIU failure on the real nodes, reported so people can act on it.
 * This VM lacks CAP_SYS_RESOURCE, so CRIU cannot read the rlimits of a
 * process running under a non-root uid (docs/nodes.md): a counter pod with
 * `runAsUser: 1000` fails to checkpoint with "Can't get rlimit 0: Operation
 * not permitted". The PodMigration must end Failed with that CRIU line (and
 * what it means) in its condition and an Event, the source must keep
 * running, and the runtime's CRIU log must be retrievable through the agent
 * (GetOperationLog) and the CLI (`deno task status --logs`).
 */
import type * as k8s from "@kubernetes/client-node";
import "../kube/http1.ts";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { openWorkspace } from "../testing/e2e.ts";
import { envTest, requirePart, testEnv } from "../testing/env.ts";
import { counterCommand, counterValues } from "../testing/workloads.ts";
import { waitFor } from "../localenv/mod.ts";
import type { LpmClient } from "../kube/lpm_client.ts";
import { AgentClient } from "../contract/client.ts";
import type { EnvironmentInfo, NodeInfo } from "../localenv/mod.ts";
import type { ContainerCheckpoint, PodMigration } from "../api/mod.ts";

const REPO = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const CLASS = "e2e-minio";
const RLIMIT_LINE = "Can't get rlimit 0: Operation not permitted";

/** What the test's steps share: clients, the namespace and the two nodes. */
interface Ctx {
  env: EnvironmentInfo;
  kubeconfig: string;
  core: k8s.CoreV1Api;
  lpm: LpmClient;
  ns: string;
  nodeA: NodeInfo;
  nodeB: NodeInfo;
}

async function setUp(): Promise<Ctx> {
  const env = testEnv();
  const kube = requirePart("kube");
  if ((env.nodes?.length ?? 0) < 2 || !env.lpm) {
    throw new Error(
      'This test needs 2 nodes and lpm (agents + controller): run it with "deno task test"',
    );
  }
  const [nodeA, nodeB] = env.nodes!;
  const { core, lpm, ns } = await openWorkspace(env, {
    ns: `criufail-${crypto.randomUUID().slice(0, 6)}`,
    storageClass: { name: CLASS, prefix: "e2e/", repository: "lpm/e2e", reuse: true },
  });
  return { env, kubeconfig: kube.kubeconfig, core, lpm, ns, nodeA, nodeB };
}

/** A counter running as uid 1000 on node-a, counting. */
async function startNonRootCounter({ env, core, ns, nodeA }: Ctx): Promise<void> {
  await core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name: "nonroot" },
      spec: {
        nodeName: nodeA.name,
        automountServiceAccountToken: false,
        terminationGracePeriodSeconds: 0,
        securityContext: { runAsUser: 1000, runAsGroup: 1000 },
        containers: [{
          name: "counter",
          image: env.nodeImages!.busybox,
          command: counterCommand(0.3),
        }],
      },
    },
  });
  await waitFor(async () => (await counterValues(core, ns, "nonroot")).length >= 3, {
    what: "the non-root counter to count",
    timeoutMs: 90_000,
  });
}

/** Migrates the counter to node-b and waits for the migration to end either way. */
async function migrate({ lpm, ns, nodeB }: Ctx): Promise<PodMigration> {
  await lpm.create("podmigrations", ns, {
    apiVersion: "lpm.my.domain/v1",
    kind: "PodMigration",
    metadata: { name: "move", namespace: ns },
    spec: { podName: "nonroot", targetNode: nodeB.name, storageClassName: CLASS },
  });
  return await waitFor(async () => {
    const m = await lpm.get<PodMigration>("podmigrations", ns, "move");
    return m?.status?.phase === "Succeeded" || m?.status?.phase === "Failed" ? m : undefined;
  }, { what: 'PodMigration "move" to finish', timeoutMs: 120_000, intervalMs: 250 });
}

/**
 * The migration failed, saying what CRIU said and what it means, in its
 * condition, its Events and the ContainerCheckpoint's; returns that checkpoint.
 */
async function assertFailureReported(
  { core, lpm, ns }: Ctx,
  pm: PodMigration,
): Promise<ContainerCheckpoint> {
  assertEquals(pm.status?.phase, "Failed", pm.status?.message);
  const cond = pm.status?.conditions?.find((c) => c.type === "Succeeded");
  assertEquals(cond?.reason, "CheckpointFailed");
  for (
    const text of [RLIMIT_LINE, "non-root uid", "CAP_SYS_RESOURCE", "the source pod goes on"]
  ) {
    assertStringIncludes(cond?.message ?? "", text);
    assertStringIncludes(pm.status?.message ?? "", text);
  }
  const events = await waitFor(async () => {
    const list = await core.listNamespacedEvent({ namespace: ns });
    const pmEvent = list.items.find((e) =>
      e.involvedObject.kind === "PodMigration" && e.reason === "PhaseFailed"
    );
    const ccEvent = list.items.find((e) =>
      e.involvedObject.kind === "ContainerCheckpoint" && e.reason === "CheckpointFailed"
    );
    return pmEvent && ccEvent ? { pmEvent, ccEvent } : undefined;
  }, { what: "the failure Events", timeoutMs: 15_000 });
  assertStringIncludes(events.pmEvent.message ?? "", RLIMIT_LINE, "kubectl describe pm");
  assertStringIncludes(events.ccEvent.message ?? "", RLIMIT_LINE, "kubectl describe cc");
  const [cc] = await lpm.list<ContainerCheckpoint>("containercheckpoints", ns);
  assertEquals(cc.status?.phase, "Failed");
  assertStringIncludes(cc.status?.message ?? "", RLIMIT_LINE);
  const ccCond = cc.status?.conditions?.find((c) => c.type === "Completed");
  assertStringIncludes(ccCond?.message ?? "", RLIMIT_LINE);
  return cc;
}

/** The source keeps running and counting on node-a; nothing was restored. */
async function assertSourceRuns({ core, ns, nodeA }: Ctx, pm: PodMigration): Promise<void> {
  const before = (await counterValues(core, ns, "nonroot")).at(-1) ?? 0;
  await new Promise((r) => setTimeout(r, 1500));
  const src = await core.readNamespacedPod({ name: "nonroot", namespace: ns });
  assertEquals(src.status?.phase, "Running");
  assertEquals(src.spec?.nodeName, nodeA.name);
  assert(((await counterValues(core, ns, "nonroot")).at(-1) ?? 0) > before, "still counting");
  assertEquals(pm.status?.restoredPodName, undefined, "no restored pod");
}

/** The whole CRIU log, through the agent's RPC. */
async function assertLogFromAgent({ env, nodeA }: Ctx, cc: ContainerCheckpoint): Promise<void> {
  const agent = env.lpm!.agents.find((a) => a.node === cc.status?.nodeName)!;
  const client = await AgentClient.connect(agent.address, {
    security: {
      mode: "mtls",
      files: {
        cert: env.lpm!.tls.controllerCert,
        key: env.lpm!.tls.controllerKey,
        ca: env.lpm!.tls.ca,
      },
    },
  });
  try {
    const log = await client.getOperationLog(cc.status!.operationId!);
    assertMatch(log.sourcePath, /criu-dump\.log$/);
    assert(log.sourcePath.startsWith(nodeA.containerdState), log.sourcePath);
    assertStringIncludes(log.content, RLIMIT_LINE);
    assertStringIncludes(log.content, "Dumping FAILED");
  } finally {
    client.close();
  }
}

/** The same log through the CLI (`deno task status --logs`). */
async function assertLogFromCli({ kubeconfig, ns, nodeA }: Ctx): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${REPO}/cli/status.ts`,
      "--logs",
      "move",
      "-n",
      ns,
      "--kubeconfig",
      kubeconfig,
      "--env",
      Deno.env.get("LPM_TEST_ENV") ?? `${REPO}/.lpm/env.json`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assertEquals(out.code, 0, `${stdout}\n${new TextDecoder().decode(out.stderr)}`);
  assertStringIncludes(stdout, `node "${nodeA.name}"`);
  assertStringIncludes(stdout, RLIMIT_LINE);
  assertStringIncludes(stdout, "Dumping FAILED");
}

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name: "criu failure: a non-root pod fails CRIU on this VM; the CRIU error reaches the " +
    "PodMigration's condition and Events, the source keeps running, the log is kept by the agent",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const ctx = await setUp();
    try {
      await startNonRootCounter(ctx);
      const pm = await migrate(ctx);
      const cc = await assertFailureReported(ctx, pm);
      await assertSourceRuns(ctx, pm);
      await assertLogFromAgent(ctx, cc);
      await assertLogFromCli(ctx);
    } finally {
      await ctx.core.deleteNamespace({ name: ctx.ns }).catch(() => {});
    }
  },
});
