/**
 * `deno task drain <node> [--timeout s] [--kubeconfig path]`
 *
 * `kubectl drain` with live migration: cordons the node, moves every pod
 * that opted in (annotation `lpm.my.domain/eviction-strategy: LiveMigrate`)
 * with a PodMigration that names no target (the controller chooses, within
 * its limits), evicts the other pods through the Eviction API (so
 * PodDisruptionBudgets hold: a 429 is retried), and waits until only
 * DaemonSet and mirror pods are left. A migration that fails falls back to
 * eviction, as `kubectl drain` would have done. Prints each pod's progress
 * and the wall time.
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import "../kube/http1.ts";
import { EVICTION_STRATEGY_ANNOTATION, LIVE_MIGRATE, type PodMigration } from "../api/mod.ts";
import { apiMessage, apiStatus, LpmClient } from "../kube/lpm_client.ts";
import { parseCommandArgs } from "../base/args.ts";
import { kubeconfigPath } from "../kube/config.ts";

const USAGE = `usage: deno task drain <node> [--storage-class <class>] [--timeout <seconds>]
                        [--kubeconfig <path>]

Cordons <node>, migrates the pods annotated ${EVICTION_STRATEGY_ANNOTATION}=LiveMigrate to
nodes lpm chooses, evicts the others (DaemonSet and mirror pods stay), and waits until it is empty.
  --storage-class  CheckpointStorageClass of the migrations (default: the default class)
  --timeout     give up after this many seconds (default 600)
  --kubeconfig  kubeconfig (default: $KUBECONFIG, .lpm/kubeconfig, ~/.kube/config)`;

/** What drain does with a pod of the node. */
export function drainAction(pod: k8s.V1Pod): "migrate" | "evict" | "skip" {
  const owner = pod.metadata?.ownerReferences?.find((o) => o.controller);
  if (owner?.kind === "DaemonSet") return "skip";
  if (pod.metadata?.annotations?.["kubernetes.io/config.mirror"]) return "skip";
  if (pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed") return "skip";
  return pod.metadata?.annotations?.[EVICTION_STRATEGY_ANNOTATION] === LIVE_MIGRATE
    ? "migrate"
    : "evict";
}

interface Drain {
  core: k8s.CoreV1Api;
  lpm: LpmClient;
  node: string;
  started: number;
  storageClass?: string;
  say(msg: string): void;
}

/** Evicts a pod, retrying while a PodDisruptionBudget (429) says not yet. */
async function evict(d: Drain, pod: k8s.V1Pod, deadline: number): Promise<void> {
  const name = pod.metadata!.name!;
  const namespace = pod.metadata!.namespace!;
  while (true) {
    try {
      await d.core.createNamespacedPodEviction({
        name,
        namespace,
        body: { apiVersion: "policy/v1", kind: "Eviction", metadata: { name, namespace } },
      });
      d.say(`pod "${namespace}/${name}": evicted`);
      return;
    } catch (err) {
      if (apiStatus(err) === 404) return;
      if (apiStatus(err) !== 429 || Date.now() > deadline) {
        throw new Error(`Cannot evict pod "${namespace}/${name}": ${apiMessage(err)}`);
      }
      await new Promise((r) => setTimeout(r, 5000));
    }
  }
}

/** Migrates a pod with a PodMigration naming no target; falls back to eviction on failure. */
async function migrate(d: Drain, pod: k8s.V1Pod, deadline: number): Promise<void> {
  const ns = pod.metadata!.namespace!;
  const podName = pod.metadata!.name!;
  const name = `drain-${podName.slice(0, 45)}-${crypto.randomUUID().slice(0, 5)}`;
  await d.lpm.create("podmigrations", ns, {
    apiVersion: "lpm.my.domain/v1",
    kind: "PodMigration",
    metadata: { name, namespace: ns },
    spec: { podName, ...(d.storageClass ? { storageClassName: d.storageClass } : {}) },
  } as PodMigration);
  let last = "";
  while (Date.now() < deadline) {
    const pm = await d.lpm.get<PodMigration>("podmigrations", ns, name);
    const phase = pm?.status?.phase ?? "Pending";
    const line = `${phase}${pm?.status?.targetNode ? ` -> ${pm.status.targetNode}` : ""}${
      phase === "Pending" && pm?.status?.message ? ` (${pm.status.message})` : ""
    }`;
    if (line !== last) d.say(`pod "${ns}/${podName}": ${line}`);
    last = line;
    if (phase === "Succeeded") return;
    if (phase === "Failed") {
      d.say(`pod "${ns}/${podName}": migration failed (${pm?.status?.message}); evicting it`);
      return await evict(d, pod, deadline);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`PodMigration "${ns}/${name}" did not finish in time`);
}

/** Waits until only pods drain skips are left on the node. */
async function emptied(d: Drain, deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    const pods = await d.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${d.node}` });
    const left = pods.items.filter((p) => drainAction(p) !== "skip");
    if (left.length === 0) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`Node "${d.node}" still has pods after the timeout`);
}

/** Runs `deno task drain`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(args, {
    known: ["storage-class", "timeout", "kubeconfig", "help"],
    booleans: ["help"],
    aliases: { h: "help" },
  }, USAGE);
  if ("exit" in parsed) return parsed.exit;
  const a = parsed.args;
  const node = a.positional[0];
  if (!node || a.positional.length > 1) {
    console.error(`${node ? "Too many arguments" : "Missing <node>"}\n\n${USAGE}`);
    return 2;
  }
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfigPath(a.flags.kubeconfig));
  const started = Date.now();
  const d: Drain = {
    core: kc.makeApiClient(k8s.CoreV1Api),
    lpm: new LpmClient(kc),
    node,
    started,
    storageClass: a.flags["storage-class"],
    say: (msg) => console.error(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`),
  };
  const deadline = started + Number(a.flags.timeout ?? 600) * 1000;
  try {
    await d.core.patchNode(
      { name: node, body: { spec: { unschedulable: true } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    d.say(`node "${node}" cordoned`);
    const pods = await d.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}` });
    await Promise.all(pods.items.map((p) => {
      const action = drainAction(p);
      return action === "migrate"
        ? migrate(d, p, deadline)
        : action === "evict"
        ? evict(d, p, deadline)
        : undefined;
    }));
    await emptied(d, deadline);
  } catch (err) {
    console.error((err as Error).message);
    return 1;
  }
  d.say(`node "${node}" drained in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
