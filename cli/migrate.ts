/**
 * `deno task migrate <pod> --to <node> [-n ns] [--storage-class c] [--pre-copy N] [--wait]`
 *
 * Creates a PodMigration for a running pod and, with --wait, follows it
 * with live progress (phase, bytes checkpointed, elapsed) until it ends;
 * exits 1 with the reason when it fails. Prints the phase timings and the
 * measured downtime on success.
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import type { ContainerCheckpoint, PodMigration } from "../api/mod.ts";
import { apiMessage, LpmClient } from "../kube/lpm_client.ts";
import { parseCommandArgs } from "../base/args.ts";
import { kubeconfigPath } from "../kube/config.ts";
import { Progress } from "./progress.ts";

const USAGE =
  `usage: deno task migrate <pod> [--to <node>] [-n <namespace>] [--storage-class <class>]
                          [--name <migration name>] [--timeout <seconds>] [--keep-source]
                          [--pre-copy <rounds>] [--ttl <seconds>] [--wait] [--kubeconfig <path>]

Creates a PodMigration that moves the running pod <pod> to node <node>.
  --to             target node (default: the controller chooses a node that fits the pod)
  -n, --namespace  the pod's namespace (default: "default")
  --storage-class  CheckpointStorageClass to use (default: the default class)
  --name           name of the PodMigration (default: <pod>-<random>)
  --timeout        give up after this many seconds (spec.timeoutSeconds)
  --keep-source    keep the source pod after the restored pod runs
  --pre-copy       copy memory in up to this many rounds (1-16) while the pod runs, so only
                   the pages written since travel while it is frozen (spec.preCopy.rounds;
                   docs/pre-copy.md)
  --ttl            delete the PodMigration (and its checkpoint's data) this many seconds after it
                   ends (spec.ttlSecondsAfterFinished; the restored pod stays); with --wait at
                   least 5, so that the outcome is seen first
  --wait           follow the migration with live progress until it ends
  --kubeconfig     kubeconfig (default: $KUBECONFIG, .lpm/kubeconfig, ~/.kube/config)`;

/** Follows a PodMigration until it ends; returns it. Progress goes to `progress`. */
export async function followMigration(
  lpm: LpmClient,
  namespace: string,
  name: string,
  progress: Progress,
  opts: { pollMs?: number; signal?: AbortSignal } = {},
): Promise<PodMigration> {
  let seen: PodMigration | undefined;
  while (true) {
    opts.signal?.throwIfAborted();
    const pm = await lpm.get<PodMigration>("podmigrations", namespace, name);
    if (!pm) {
      const was = seen?.status?.phase;
      throw new Error(
        `PodMigration "${namespace}/${name}" was deleted` +
          (was
            ? ` while ${was} (its outcome is not known here: with a short ` +
              "spec.ttlSecondsAfterFinished it can go before it is seen finished)"
            : ""),
      );
    }
    seen = pm;
    const phase = pm.status?.phase ?? "Pending";
    let bytesDone = 0;
    let bytesTotal = 0;
    if (phase === "Checkpointing") {
      const ccs = await lpm.list<ContainerCheckpoint>("containercheckpoints", namespace);
      for (const cc of ccs) {
        if (!cc.metadata?.name?.startsWith(`${name}-`)) continue;
        bytesDone += cc.status?.progress?.bytesDone ?? 0;
        bytesTotal += cc.status?.progress?.bytesTotal ?? 0;
      }
    }
    if (phase === "Succeeded" || phase === "Failed") return pm;
    progress.update({
      phase,
      bytesDone,
      bytesTotal,
      detail: phase === "PreCopying" ? preCopyDetail(pm) : pm.status?.message,
    });
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 250));
  }
}

/** Where pre-copy is: each container's last round and how much it had left to send. */
export function preCopyDetail(pm: PodMigration): string {
  const cs = pm.status?.preCopy?.containers ?? [];
  if (!cs.length) return "first round";
  return cs.map((c) => {
    const r = c.rounds?.at(-1);
    return r
      ? `${c.name}: round ${r.round}, ${(r.dirtyBytes / 1048576).toFixed(1)} MiB changed`
      : `${c.name}: round 1`;
  }).join("; ");
}

/**
 * Human summary of a finished migration's timings: the steps (dump, upload,
 * pre-pull, restore), then the downtime (source frozen -> restored pod
 * running) apart from the total.
 */
export function timingSummary(pm: PodMigration): string {
  const t = pm.status?.timings ?? {};
  const s = (ms?: number) => (ms === undefined ? "-" : `${(ms / 1000).toFixed(2)}s`);
  const pre = t.preCopyMs !== undefined ? `pre-copy ${s(t.preCopyMs)} (source running), ` : "";
  return `${pre}dump ${s(t.dumpMs)}, upload ${s(t.uploadMs)}, pre-pull ${
    s(t.prePullMs ?? t.transferMs)
  }, ` +
    `restore ${s(t.restoreMs)}; downtime ${s(t.downtimeMs)} (frozen -> running), ` +
    `total ${s(t.totalMs)}`;
}

/** Runs the command (also `kubectl lpm migrate`); returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(args, {
    known: [
      "to",
      "namespace",
      "storage-class",
      "name",
      "timeout",
      "keep-source",
      "pre-copy",
      "ttl",
      "wait",
      "kubeconfig",
      "help",
    ],
    booleans: ["keep-source", "wait", "help"],
    aliases: { n: "namespace", h: "help" },
  }, USAGE);
  if ("exit" in parsed) return parsed.exit;
  const a = parsed.args;
  const pod = a.positional[0];
  const target = a.flags.to;
  if (!pod || a.positional.length > 1) {
    console.error(`${!pod ? "Missing <pod>" : "Too many arguments"}\n\n${USAGE}`);
    return 2;
  }
  const ns = a.flags.namespace ?? "default";
  const rounds = a.flags["pre-copy"] !== undefined ? Number(a.flags["pre-copy"]) : undefined;
  if (rounds !== undefined && !(Number.isInteger(rounds) && rounds >= 1 && rounds <= 16)) {
    console.error(
      `--pre-copy must be a number of rounds from 1 to 16, not "${a.flags["pre-copy"]}"`,
    );
    return 2;
  }
  const ttl = a.flags.ttl !== undefined ? Number(a.flags.ttl) : undefined;
  const minTtl = a.flags.wait ? 5 : 0;
  if (ttl !== undefined && !(Number.isInteger(ttl) && ttl >= minTtl && ttl <= 31536000)) {
    console.error(
      `--ttl must be whole seconds from ${minTtl}${a.flags.wait ? " (with --wait)" : ""} ` +
        `to 31536000, not "${a.flags.ttl}"`,
    );
    return 2;
  }
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfigPath(a.flags.kubeconfig));
  const lpm = new LpmClient(kc);
  const name = a.flags.name ?? `${pod.slice(0, 40)}-${crypto.randomUUID().slice(0, 5)}`;
  const timeout = a.flags.timeout ? Number(a.flags.timeout) : undefined;
  if (timeout !== undefined && !(timeout > 0)) {
    console.error(`--timeout must be a positive number of seconds, not "${a.flags.timeout}"`);
    return 2;
  }
  const pm: PodMigration = {
    apiVersion: "lpm.my.domain/v1",
    kind: "PodMigration",
    metadata: { name, namespace: ns },
    spec: {
      podName: pod,
      ...(target ? { targetNode: target } : {}),
      ...(a.flags["storage-class"] ? { storageClassName: a.flags["storage-class"] } : {}),
      ...(timeout ? { timeoutSeconds: timeout } : {}),
      ...(a.flags["keep-source"] ? { sourcePodPolicy: "Keep" as const } : {}),
      ...(rounds ? { preCopy: { rounds } } : {}),
      ...(ttl !== undefined ? { ttlSecondsAfterFinished: ttl } : {}),
    },
  } as PodMigration;
  try {
    await lpm.create("podmigrations", ns, pm);
  } catch (err) {
    console.error(`Cannot create PodMigration "${ns}/${name}": ${apiMessage(err)}`);
    return 1;
  }
  console.error(
    `PodMigration "${ns}/${name}" created: pod "${pod}" -> node "${target ?? "(lpm chooses)"}"`,
  );
  if (!a.flags.wait) {
    console.error(`Follow it with: kubectl get podmigration -n ${ns} ${name} -w`);
    return 0;
  }
  const progress = new Progress();
  const done = await followMigration(lpm, ns, name, progress);
  if (done.status?.phase === "Succeeded") {
    progress.done(`Succeeded: ${done.status.message ?? ""}`);
    if (!target) console.error(`Target chosen by lpm: "${done.status.targetNode}"`);
    console.error(`Timings: ${timingSummary(done)}`);
    return 0;
  }
  progress.done(`Failed: ${done.status?.message ?? "no message"}`);
  return 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
