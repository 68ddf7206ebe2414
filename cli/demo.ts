/**
 * `deno task demo [--down]`: the README's main job. Starts the local cluster
 * with two real nodes, an lpm agent on each and the controller (or reuses a
 * running one), creates a MinIO-backed CheckpointStorageClass, runs a
 * counter pod on node-a, migrates it to node-b with a PodMigration, and
 * prints the counter just before and just after, with the phase timings and
 * the measured downtime. The cluster stays up unless --down is given.
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import type { PodMigration } from "../api/mod.ts";
import { apiMessage, apiStatus, LpmClient } from "../controllers/lpm_client.ts";
import type { EnvironmentInfo } from "../tests/harness/environment.ts";
import { followMigration, timingSummary } from "./migrate.ts";
import { Progress } from "./_progress.ts";

const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const STATE = Deno.env.get("LPM_STATE_DIR") ?? `${ROOT}/.lpm`;
const NS = "default";

function say(msg: string): void {
  console.log(`[demo] ${msg}`);
}

/** Re-running the demo finds its objects already there: that is fine, anything else is not. */
function ignoreExists(err: unknown): void {
  if (apiStatus(err) !== 409) throw new Error(apiMessage(err));
}

async function run(cmd: string[], opts: { quiet?: boolean } = {}): Promise<void> {
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    cwd: ROOT,
    stdout: opts.quiet ? "piped" : "inherit",
    stderr: opts.quiet ? "piped" : "inherit",
  }).output();
  if (!out.success) {
    throw new Error(
      `"${cmd.join(" ")}" failed${opts.quiet ? `: ${new TextDecoder().decode(out.stderr)}` : ""}`,
    );
  }
}

async function readEnv(): Promise<EnvironmentInfo | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(`${STATE}/env.json`)) as EnvironmentInfo;
  } catch {
    return undefined;
  }
}

/** Counter values in a pod's log (lines that are plain integers). */
async function counterValues(core: k8s.CoreV1Api, pod: string): Promise<number[]> {
  const log = await core.readNamespacedPodLog({ name: pod, namespace: NS, container: "counter" });
  return String(log).split("\n").filter((l) => /^\d+$/.test(l.trim())).map(Number);
}

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 60_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

async function main(args: string[]): Promise<number> {
  const t0 = Date.now();
  let env = await readEnv();
  if (!env?.lpm || (env.nodes?.length ?? 0) < 2) {
    if (env) {
      say("a local cluster runs without lpm or two nodes: restarting it");
      await run([Deno.execPath(), "task", "-q", "cluster:down"]);
    }
    say(
      "starting the local cluster: control plane, MinIO, registry, 2 real nodes, agents, controller",
    );
    await run([Deno.execPath(), "task", "-q", "cluster:up", "--nodes", "2", "--with-lpm"]);
    env = await readEnv();
  } else {
    say("reusing the running local cluster");
  }
  if (!env?.kube || !env.minio || !env.registry || !env.nodeImages) {
    throw new Error("The environment is incomplete");
  }
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(`${STATE}/kubeconfig`);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const lpm = new LpmClient(kc);

  say('creating the CheckpointStorageClass "demo-minio" (MinIO + the local registry)');
  await core.createNamespacedSecret({
    namespace: "lpm-system",
    body: {
      metadata: { name: "demo-minio" },
      stringData: { accessKeyId: env.minio.accessKey, secretAccessKey: env.minio.secretKey },
    },
  }).catch(ignoreExists);
  await lpm.create("checkpointstorageclasses", "", {
    apiVersion: "lpm.my.domain/v1",
    kind: "CheckpointStorageClass",
    metadata: { name: "demo-minio" },
    spec: {
      provider: "minio",
      minio: { endpoint: env.minio.endpoint, bucket: env.minio.bucket },
      credentialsSecretRef: { name: "demo-minio", namespace: "lpm-system" },
      registry: { repository: `${env.registry.host}/lpm/checkpoints`, insecure: true },
    },
  }).catch(ignoreExists);
  await waitFor("the storage class to be validated", async () => {
    const c = await lpm.get<{ status?: { phase?: string; message?: string } }>(
      "checkpointstorageclasses",
      "",
      "demo-minio",
    );
    if (c?.status?.phase === "Unavailable") {
      throw new Error(`Storage class unavailable: ${c.status.message}`);
    }
    return c?.status?.phase === "Available" ? true : undefined;
  });

  const pod = `counter-${crypto.randomUUID().slice(0, 5)}`;
  say(`starting pod "${pod}" on node-a: it prints 1, 2, 3... twice a second`);
  await core.createNamespacedPod({
    namespace: NS,
    body: {
      metadata: { name: pod, labels: { app: "counter" } },
      spec: {
        nodeName: "node-a",
        containers: [{
          name: "counter",
          image: env.nodeImages.busybox,
          command: ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i; sleep 0.5; done"],
        }],
      },
    },
  });
  await waitFor(
    "the counter to count to 5",
    async () => ((await counterValues(core, pod)).at(-1) ?? 0) >= 5 ? true : undefined,
  );

  const name = `move-${pod}`;
  const before = (await counterValues(core, pod)).at(-1);
  say(`counter on node-a just before the migration: ${before}`);
  await lpm.create("podmigrations", NS, {
    apiVersion: "lpm.my.domain/v1",
    kind: "PodMigration",
    metadata: { name, namespace: NS },
    spec: { podName: pod, targetNode: "node-b", storageClassName: "demo-minio" },
  });
  const done: PodMigration = await followMigration(lpm, NS, name, new Progress());
  if (done.status?.phase !== "Succeeded") {
    say(`migration FAILED: ${done.status?.message}`);
    return 1;
  }
  const restored = done.status.restoredPodName!;
  // The restored log starts with the checkpointed log; new values follow it.
  const checkpointed = await counterValues(core, restored);
  await new Promise((r) => setTimeout(r, 1500));
  const after = (await counterValues(core, restored)).slice(checkpointed.length);
  say(`migration Succeeded: "${pod}" on node-a -> "${restored}" on node-b`);
  say(`counter at the checkpoint:          ${checkpointed.at(-1)}`);
  say(
    `first values on node-b after it:    ${
      after.slice(0, 3).join(", ")
    }  (continues, does not restart at 1)`,
  );
  say(`phase timings: ${timingSummary(done)}`);
  say(`demo wall time: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  if (args.includes("--down")) {
    await run([Deno.execPath(), "task", "-q", "cluster:down"]);
    say("cluster stopped");
  } else {
    say("the cluster is still up. Look around:");
    say(`  export KUBECONFIG=${STATE}/kubeconfig PATH=$HOME/.cache/lpm/bin:$PATH`);
    say("  kubectl get nodes,pods -o wide; kubectl get lpm; kubectl describe pm " + name);
    say("  deno task status; deno task migrate <pod> --to node-a --wait");
    say("  stop it with: deno task cluster:down");
  }
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (err) {
    console.error(`[demo] ERROR: ${(err as Error).message}`);
    Deno.exit(1);
  }
}
