/**
 * Helpers for tests against lpm installed in the cluster (no host-process
 * agent or controller to ask): follow a pod's counter through `kubectl logs
 * -f` until the pod is gone, check that a restored pod continues it, wait for
 * a PodMigration with kubectl, and check the installation is Ready.
 * @module
 */
import { assert, assertEquals, assertGreater } from "@std/assert";
import type * as k8s from "@kubernetes/client-node";
import { kubectl, tool, waitFor } from "../localenv/mod.ts";
import { counterValues } from "./workloads.ts";
import type { PodMigration } from "../api/mod.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A pod's counter values as its log shows them, followed until the pod stops. */
export interface Follower {
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
export function followCounter(kc: string, ns: string, pod: string): Follower {
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
export async function assertContinues(
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
export function finishedMigration(kc: string, ns: string, name: string): Promise<PodMigration> {
  return waitFor(async () => {
    const out = await kubectl(kc, ["-n", ns, "get", "podmigration", name, "-o", "json"]);
    const p = JSON.parse(out) as PodMigration;
    return p.status?.phase === "Succeeded" || p.status?.phase === "Failed" ? p : undefined;
  }, { what: `the PodMigration "${name}" to finish`, timeoutMs: 180_000, intervalMs: 500 });
}

/** Asserts the controller and one agent per node run Ready in lpm-system. */
export async function assertInstalled(kc: string): Promise<void> {
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
