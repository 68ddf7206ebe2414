/**
 * `deno task status [-n ns | -A] [--kubeconfig path]`: a table of
 * migrations, checkpoints and storage classes, with phases and timings.
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import type { CheckpointStorageClass, PodCheckpoint, PodMigration } from "../api/mod.ts";
import { apiMessage, LpmClient } from "../controllers/lpm_client.ts";
import { kubeconfigPath, parseArgs } from "./_args.ts";
import { timingSummary } from "./migrate.ts";

const USAGE = `usage: deno task status [-n <namespace> | -A] [--kubeconfig <path>]

Shows PodMigrations, PodCheckpoints and CheckpointStorageClasses.`;

/** Formats rows as an aligned table. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => (c ?? "").padEnd(widths[i])).join("  ").trimEnd()).join(
    "\n",
  );
}

async function main(args: string[]): Promise<number> {
  let a;
  try {
    a = parseArgs(args, {
      known: ["namespace", "all-namespaces", "kubeconfig", "help"],
      booleans: ["all-namespaces", "help"],
      aliases: { n: "namespace", A: "all-namespaces", h: "help" },
    });
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (a.flags.help) {
    console.log(USAGE);
    return 0;
  }
  const ns = a.flags["all-namespaces"] ? "" : a.flags.namespace ?? "default";
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfigPath(a.flags.kubeconfig));
  const lpm = new LpmClient(kc);
  try {
    const classes = await lpm.list<CheckpointStorageClass>("checkpointstorageclasses");
    console.log("STORAGE CLASSES");
    console.log(table([
      ["NAME", "PROVIDER", "DEFAULT", "PHASE", "MESSAGE"],
      ...classes.map((c) => [
        c.metadata?.name ?? "",
        c.spec.provider,
        c.spec.default ? "yes" : "",
        c.status?.phase ?? "",
        (c.status?.message ?? "").slice(0, 80),
      ]),
    ]));
    const pms = await lpm.list<PodMigration>("podmigrations", ns);
    console.log("\nPOD MIGRATIONS");
    console.log(table([
      ["NAMESPACE", "NAME", "POD", "SOURCE", "TARGET", "PHASE", "TIMINGS / MESSAGE"],
      ...pms.map((m) => [
        m.metadata?.namespace ?? "",
        m.metadata?.name ?? "",
        m.spec.podName,
        m.status?.sourceNode ?? "",
        m.spec.targetNode,
        m.status?.phase ?? "",
        m.status?.phase === "Succeeded"
          ? timingSummary(m)
          : (m.status?.message ?? "").slice(0, 100),
      ]),
    ]));
    const pcs = await lpm.list<PodCheckpoint>("podcheckpoints", ns);
    console.log("\nPOD CHECKPOINTS");
    console.log(table([
      ["NAMESPACE", "NAME", "POD", "NODE", "PHASE", "IMAGES"],
      ...pcs.map((p) => [
        p.metadata?.namespace ?? "",
        p.metadata?.name ?? "",
        p.spec.podName,
        p.status?.nodeName ?? "",
        p.status?.phase ?? "",
        (p.status?.containers ?? []).map((c) => `${c.name}=${c.image ?? "-"}`).join(" "),
      ]),
    ]));
  } catch (err) {
    console.error(`Cannot read lpm resources: ${apiMessage(err)}`);
    return 1;
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
