/**
 * lpm installed the way an operator installs it: its own images in the
 * registry and `kubectl apply -k` (localenv/in_cluster.ts), on a private
 * environment with two real nodes (no host-process agent or controller).
 * A counter moves node-a -> node-b through `kubectl apply` of a PodMigration,
 * then back to node-a through the kubectl plugin (`kubectl lpm migrate`),
 * and each time continues from the last value the pod it replaced printed
 * (read from that pod's own log, followed until it is gone).
 */
import "../kube/http1.ts";
import { assert, assertEquals, assertGreater, assertMatch } from "@std/assert";
import type * as k8s from "@kubernetes/client-node";
import { kubectl, startEnvironment, tool, toolPath, waitFor } from "../localenv/mod.ts";
import { envTest } from "../testing/env.ts";
import { openWorkspace } from "../testing/e2e.ts";
import { counterCommand, counterValues } from "../testing/workloads.ts";
import type { PodMigration } from "../api/mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const REPO_ROOT = new URL("../", import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A pod's counter values as its log shows them, followed until the pod stops. */
interface Follower {
  /** Every counter value seen, in order. */
  values: number[];
  /** Resolves when the container stopped or the pod is gone (or on stop). */
  ended: Promise<void>;
  /** Stops following (kills the `kubectl logs -f`). */
  stop(): void;
}

/**
 * Follows `pod`'s log with `kubectl logs -f` from its first line until the
 * container stops or the pod is gone. A dropped stream is read again from the
 * start and only the lines past those already kept are added.
 */
function followCounter(kc: string, ns: string, pod: string): Follower {
  const abort = new AbortController();
  const values: number[] = [];
  const readOnce = async () => {
    const child = new Deno.Command(tool("kubectl"), {
      args: [`--kubeconfig=${kc}`, "-n", ns, "logs", "-f", pod],
      stdout: "piped",
      stderr: "null",
      signal: abort.signal,
    }).spawn();
    let seen = 0;
    let buf = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      const cut = buf.lastIndexOf("\n") + 1;
      for (const l of buf.slice(0, cut).split("\n").map((s) => s.trim())) {
        if (/^\d+$/.test(l) && seen++ >= values.length) values.push(Number(l));
      }
      buf = buf.slice(cut);
    }
    await child.status;
  };
  const stopped = async () => {
    try {
      const p = JSON.parse(
        await kubectl(kc, ["-n", ns, "get", "pod", pod, "-o", "json"]),
      ) as k8s.V1Pod;
      return Boolean(p.status?.containerStatuses?.[0]?.state?.terminated);
    } catch (err) {
      return /NotFound|not found/.test(String(err));
    }
  };
  const ended = (async () => {
    while (!abort.signal.aborted) {
      await readOnce().catch(() => {});
      if (abort.signal.aborted || await stopped()) return;
      await sleep(250);
    }
  })();
  return { values, ended, stop: () => abort.abort() };
}

/**
 * Waits until the migration's source is gone and its restored pod runs and
 * has printed new values; asserts the restored log replays exactly what the
 * source printed (the checkpoint's log) and then continues at the source's
 * last value + 1. Returns that last value.
 */
async function assertContinues(
  core: k8s.CoreV1Api,
  ns: string,
  source: Follower,
  restored: string,
): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    source.ended,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error("The source pod did not stop in 60 s")), 60_000);
    }),
  ]).finally(() => clearTimeout(timer));
  const was = source.values;
  const last = was.at(-1) ?? 0;
  assertGreater(last, 1, "the source counted");
  const all = await waitFor(async () => {
    const p = await core.readNamespacedPod({ name: restored, namespace: ns });
    if (p.status?.phase !== "Running") return undefined;
    const v = await counterValues(core, ns, restored);
    return v.length > was.length + 1 ? v : undefined;
  }, { what: `the restored pod "${restored}" to run and count`, timeoutMs: 60_000 });
  assertEquals(
    all.slice(0, was.length),
    was,
    "the restored pod replays the source's whole log (the checkpoint's)",
  );
  assertEquals(
    all[was.length],
    last + 1,
    `counting continues from the source's last value ${last}: then ${
      all.slice(was.length, was.length + 5)
    }`,
  );
  return last;
}

/** The PodMigration `name` once it has finished. */
function finished(kc: string, ns: string, name: string): Promise<PodMigration> {
  return waitFor(async () => {
    const out = await kubectl(kc, ["-n", ns, "get", "podmigration", name, "-o", "json"]);
    const p = JSON.parse(out) as PodMigration;
    return p.status?.phase === "Succeeded" || p.status?.phase === "Failed" ? p : undefined;
  }, { what: `the PodMigration "${name}" to finish`, timeoutMs: 180_000, intervalMs: 500 });
}

/** Asserts the controller and one agent per node run Ready in lpm-system. */
async function assertInstalled(kc: string): Promise<void> {
  const pods = JSON.parse(await kubectl(kc, ["-n", "lpm-system", "get", "pods", "-o", "json"]))
    .items as {
      metadata: { name: string };
      spec: { nodeName: string };
      status: { conditions?: { type: string; status: string }[] };
    }[];
  const ready = pods.filter((p) =>
    p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True")
  );
  const agents = ready.filter((p) => p.metadata.name.startsWith("lpm-agent-"));
  assertEquals(agents.map((p) => p.spec.nodeName).sort(), ["node-a", "node-b"]);
  assert(ready.some((p) => p.metadata.name.startsWith("lpm-controller-")), "controller Ready");
}

/** Runs `kubectl <args>` with the plugin's directory first in PATH. */
async function kubectlWithPlugin(
  kc: string,
  pluginDir: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(tool("kubectl"), {
    args,
    env: { PATH: `${pluginDir}:${toolPath()}`, KUBECONFIG: kc },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

/**
 * Installs the plugin with `deno task kubectl-plugin --dir`, checks its help,
 * and migrates `pod` back to node-a with `kubectl lpm migrate --wait`.
 */
async function migrateWithPlugin(
  kc: string,
  core: k8s.CoreV1Api,
  ns: string,
  pod: string,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "lpm-plugin-" });
  try {
    const install = await new Deno.Command(Deno.execPath(), {
      args: ["task", "kubectl-plugin", "--dir", dir],
      cwd: REPO_ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(install.code, 0, new TextDecoder().decode(install.stderr));
    const help = await kubectlWithPlugin(kc, dir, ["lpm", "--help"]);
    assertEquals(help.code, 0, help.stderr);
    for (const c of ["migrate", "checkpoint", "restore", "status", "drain"]) {
      assertMatch(help.stdout, new RegExp(`^\\s+${c}\\s`, "m"), `"kubectl lpm --help" lists ${c}`);
    }
    const source = followCounter(kc, ns, pod);
    try {
      await waitFor(() => source.values.length > 0, { what: `the log of "${pod}"` });
      const t0 = performance.now();
      const run = await kubectlWithPlugin(kc, dir, [
        ...["lpm", "migrate", pod, "--to", "node-a", "-n", ns],
        ...["--storage-class", "ic-minio", "--name", "back", "--wait"],
      ]);
      const seconds = (performance.now() - t0) / 1000;
      assertEquals(run.code, 0, `kubectl lpm migrate failed:\n${run.stderr}`);
      assertMatch(run.stderr, /Succeeded/);
      const pm = await finished(kc, ns, "back");
      assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
      assertEquals(pm.status?.targetNode ?? pm.spec.targetNode, "node-a");
      const last = await assertContinues(core, ns, source, pm.status!.restoredPodName!);
      console.log(
        `kubectl lpm migrate: ${
          seconds.toFixed(1)
        } s, downtime ${pm.status?.timings?.downtimeMs} ms, continued at ${last + 1}`,
      );
    } finally {
      source.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

envTest({ starts: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name:
    "in-cluster: kubectl apply -k installs lpm from its images; a counter migrates through kubectl apply, and back through kubectl lpm migrate",
  ...opts,
  async fn() {
    const env = await startEnvironment({
      parts: ["kube", "minio", "registry"],
      nodes: 2,
      inCluster: true,
    });
    try {
      const kc = env.info.kube!.kubeconfig;
      const ic = env.info.lpmInCluster!;
      console.log(
        `images: ${ic.images.map((i) => i.reference).join(", ")}; sizes ${
          JSON.stringify(ic.sizes)
        }; build ${ic.buildSeconds.toFixed(1)} s, install ${ic.installSeconds.toFixed(1)} s`,
      );
      await assertInstalled(kc);
      const ns = `ic-${crypto.randomUUID().slice(0, 6)}`;
      const { core } = await openWorkspace(env.info, {
        ns,
        storageClass: { name: "ic-minio", prefix: "ic/", repository: "lpm/ic" },
      });
      await core.createNamespacedPod({
        namespace: ns,
        body: {
          metadata: { name: "counter" },
          spec: {
            nodeName: "node-a",
            containers: [{
              name: "counter",
              image: env.info.nodeImages!.busybox,
              command: counterCommand(0.3),
            }],
          },
        },
      });
      const source = followCounter(kc, ns, "counter");
      try {
        await waitFor(() => (source.values.at(-1) ?? 0) >= 5, {
          what: "the counter to count",
          timeoutMs: 60_000,
        });
        await kubectl(
          kc,
          ["apply", "-f", "-"],
          `apiVersion: lpm.my.domain/v1
kind: PodMigration
metadata:
  name: move
  namespace: ${ns}
spec:
  podName: counter
  targetNode: node-b
  storageClassName: ic-minio
`,
        );
        const pm = await finished(kc, ns, "move");
        assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
        const restored = pm.status!.restoredPodName!;
        const last = await assertContinues(core, ns, source, restored);
        console.log(
          `migrated: downtime ${pm.status?.timings?.downtimeMs} ms, continued at ${last + 1}`,
        );
        await migrateWithPlugin(kc, core, ns, restored);
      } finally {
        source.stop();
      }
    } finally {
      await env.stop();
    }
  },
});
