/**
 * `deno task checkpoint <pod> [-n ns] [--storage-class c] [--container name...] [--stop] [--wait]`
 *
 * Creates a PodCheckpoint: every container (or the named ones) of a running
 * pod is checkpointed, packed as a checkpoint image, pushed, and stored; the
 * pod keeps running, or with --stop (`leaveRunning: false`) it is frozen whole
 * before the dump and stopped after it, so it never runs past its checkpoint.
 * With --wait, shows progress and prints the images.
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import type { ContainerCheckpoint, PodCheckpoint } from "../api/mod.ts";
import { apiMessage, LpmClient } from "../kube/lpm_client.ts";
import { parseCommandArgs } from "../base/args.ts";
import { kubeconfigPath } from "../kube/config.ts";
import { Progress } from "./progress.ts";

const USAGE = `usage: deno task checkpoint <pod> [-n <namespace>] [--storage-class <class>]
                             [--container <name>[,<name>...]] [--name <name>] [--stop] [--wait]
                             [--kubeconfig <path>]

Checkpoints the running pod <pod> (all containers unless --container); the pod keeps running.
--stop freezes the whole pod before the dump and stops (deletes) it after: leaveRunning false.`;

/** Runs the command (also `kubectl lpm checkpoint`); returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(args, {
    known: [
      "namespace",
      "storage-class",
      "container",
      "name",
      "stop",
      "wait",
      "kubeconfig",
      "help",
    ],
    booleans: ["stop", "wait", "help"],
    aliases: { n: "namespace", c: "container", h: "help" },
  }, USAGE);
  if ("exit" in parsed) return parsed.exit;
  const a = parsed.args;
  const pod = a.positional[0];
  if (!pod || a.positional.length > 1) {
    console.error(`${pod ? "Too many arguments" : "Missing <pod>"}\n\n${USAGE}`);
    return 2;
  }
  const ns = a.flags.namespace ?? "default";
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfigPath(a.flags.kubeconfig));
  const lpm = new LpmClient(kc);
  const name = a.flags.name ?? `${pod.slice(0, 40)}-ckpt-${crypto.randomUUID().slice(0, 5)}`;
  const body = {
    apiVersion: "lpm.my.domain/v1",
    kind: "PodCheckpoint",
    metadata: { name, namespace: ns },
    spec: {
      podName: pod,
      ...(a.flags["storage-class"] ? { storageClassName: a.flags["storage-class"] } : {}),
      ...(a.flags.container ? { containers: a.flags.container.split(",") } : {}),
      ...(a.flags.stop ? { leaveRunning: false } : {}),
    },
  } as PodCheckpoint;
  try {
    await lpm.create("podcheckpoints", ns, body);
  } catch (err) {
    console.error(`Cannot create PodCheckpoint "${ns}/${name}": ${apiMessage(err)}`);
    return 1;
  }
  console.error(`PodCheckpoint "${ns}/${name}" created for pod "${pod}"`);
  if (!a.flags.wait) return 0;
  const progress = new Progress();
  while (true) {
    const pc = await lpm.get<PodCheckpoint>("podcheckpoints", ns, name);
    const phase = pc?.status?.phase ?? "Pending";
    if (phase === "Succeeded" || phase === "Failed") {
      progress.done(`${phase}: ${pc?.status?.message ?? ""}`);
      for (const c of pc?.status?.containers ?? []) console.log(`${c.name}\t${c.image ?? "-"}`);
      return phase === "Succeeded" ? 0 : 1;
    }
    let done = 0;
    let total = 0;
    for (const c of pc?.status?.containers ?? []) {
      const cc = await lpm.get<ContainerCheckpoint>(
        "containercheckpoints",
        ns,
        c.containerCheckpointName,
      );
      done += cc?.status?.progress?.bytesDone ?? 0;
      total += cc?.status?.progress?.bytesTotal ?? 0;
    }
    progress.update({ phase, bytesDone: done, bytesTotal: total, detail: pc?.status?.message });
    await new Promise((r) => setTimeout(r, 250));
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
