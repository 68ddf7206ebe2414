/**
 * `deno task demo [--down] [--host-processes]`: the README's main job. Starts
 * the local cluster with two real nodes and installs lpm in it the way an
 * operator does (its own images, `kubectl apply -k`: a controller and an agent
 * per node), or with `--host-processes` runs lpm's agents and controller as
 * processes on this machine (for development); or reuses a running cluster.
 * It creates a MinIO-backed CheckpointStorageClass, runs a
 * 10 Hz counter pod on node-a, follows the source's log while it migrates
 * it to node-b with a PodMigration, and checks what a migration promises: the
 * source's last value before the freeze (read from the source) is followed by
 * exactly that value + 1 as the restored pod's first new value. It prints
 * only what it checked, then the timings with the downtime (source frozen ->
 * restored pod running) apart from the total, and exits 1 loudly when the
 * check fails. The cluster stays up unless --down is given.
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import type { PodMigration } from "../api/mod.ts";
import { parseArgs } from "../base/args.ts";
import { apiMessage, apiStatus, LpmClient } from "../kube/lpm_client.ts";
import { type KubeHttp, kubeHttp } from "../kube/http.ts";
import type { EnvironmentInfo } from "./info.ts";
import { followMigration, timingSummary } from "../cli/migrate.ts";
import { Progress } from "../cli/progress.ts";

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

/** One log line with the node's CRI timestamp (the log API's `timestamps=true`). */
interface LogLine {
  ts: string;
  text: string;
}

function parseLog(text: string): LogLine[] {
  return text.split("\n").filter(Boolean).map((raw) => {
    const sp = raw.indexOf(" ");
    return { ts: raw.slice(0, sp), text: raw.slice(sp + 1).trim() };
  });
}

/** The counter values of `lines`. */
function values(lines: LogLine[]): number[] {
  return lines.filter((l) => /^\d+$/.test(l.text)).map((l) => Number(l.text));
}

function logPath(pod: string, follow: boolean): string {
  return `/api/v1/namespaces/${NS}/pods/${pod}/log?container=counter&timestamps=true` +
    (follow ? "&follow=true" : "");
}

async function readLog(http: KubeHttp, pod: string): Promise<LogLine[]> {
  const res = await http.request(logPath(pod, false));
  const text = await res.text();
  if (!res.ok) throw new Error(`Cannot read the log of pod "${pod}": ${res.status} ${text}`);
  return parseLog(text);
}

/**
 * Follows the source's log from its first line until the stream ends (the
 * source is killed at hand-over, or the pod is gone), keeping every line; a
 * dropped stream is read again from the start and only new lines are kept.
 */
function followLog(
  http: KubeHttp,
  pod: string,
  signal: AbortSignal,
): { lines: LogLine[]; ended: Promise<void> } {
  const lines: LogLine[] = [];
  const ended = (async () => {
    while (!signal.aborted) {
      try {
        const res = await http.request(logPath(pod, true), { signal });
        if (res.status === 404) return;
        if (res.ok) {
          let seen = 0;
          let buf = "";
          for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
            buf += chunk;
            const cut = buf.lastIndexOf("\n") + 1;
            for (const l of parseLog(buf.slice(0, cut))) if (seen++ >= lines.length) lines.push(l);
            buf = buf.slice(cut);
          }
          const p = await http.request(`/api/v1/namespaces/${NS}/pods/${pod}`, { signal });
          if (p.status === 404) return;
          const s = (await p.json() as k8s.V1Pod).status?.containerStatuses?.[0]?.state;
          if (s?.terminated) return;
        } else await res.body?.cancel();
      } catch {
        // dropped: read again
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  return { lines, ended };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
  const { flags } = parseArgs(args, {
    known: ["down", "host-processes"],
    booleans: ["down", "host-processes"],
  });
  const hostProcesses = flags["host-processes"] === "true";
  const t0 = Date.now();
  let env = await readEnv();
  if ((!env?.lpm && !env?.lpmInCluster) || (env.nodes?.length ?? 0) < 2) {
    if (env) {
      say("a local cluster runs without lpm or two nodes: restarting it");
      await run([Deno.execPath(), "task", "-q", "cluster:down"]);
    }
    say(
      hostProcesses
        ? "starting the local cluster: control plane, MinIO, registry, 2 real nodes, lpm's agents and controller as host processes"
        : "starting the local cluster: control plane, MinIO, registry, 2 real nodes; then lpm's images are built, pushed and installed with kubectl apply -k",
    );
    const mode = hostProcesses ? "--with-lpm" : "--in-cluster";
    await run([Deno.execPath(), "task", "-q", "cluster:up", "--nodes", "2", mode]);
    env = await readEnv();
  } else {
    say(
      `reusing the running local cluster (lpm ${
        env.lpmInCluster ? "in-cluster" : "as host processes"
      })`,
    );
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

  const http = kubeHttp(kc);
  const following = new AbortController();
  let name: string;
  try {
    const r = await migrateCounter(core, lpm, http, {
      image: env.nodeImages.busybox,
      signal: following.signal,
    });
    if (r.code !== 0) return r.code;
    name = r.migration;
  } finally {
    following.abort();
    http.close();
  }
  say(`demo wall time: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  if (flags.down === "true") {
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

/** Prints a failed check so that nobody misses it. */
function failed(migration: string, msg: string): { code: number; migration: string } {
  console.error(`\n[demo] !!! CHECK FAILED: ${msg}\n`);
  return { code: 1, migration };
}

/**
 * Runs the counter on node-a, migrates it to node-b while following the
 * source's log, and checks the restored pod's first new value against the
 * source's last one.
 */
async function migrateCounter(
  core: k8s.CoreV1Api,
  lpm: LpmClient,
  http: KubeHttp,
  opts: { image: string; signal: AbortSignal },
): Promise<{ code: number; migration: string }> {
  const pod = `counter-${crypto.randomUUID().slice(0, 5)}`;
  say(`starting pod "${pod}" on node-a: it prints 1, 2, 3... ten times a second`);
  await core.createNamespacedPod({
    namespace: NS,
    body: {
      metadata: { name: pod, labels: { app: "counter" } },
      spec: {
        nodeName: "node-a",
        containers: [{
          name: "counter",
          image: opts.image,
          command: ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done"],
        }],
      },
    },
  });
  await waitFor("the counter to run", async () => {
    const p = await core.readNamespacedPod({ name: pod, namespace: NS });
    return p.status?.containerStatuses?.[0]?.state?.running ? true : undefined;
  });
  // The source's own log, followed through the migration until it is killed.
  const source = followLog(http, pod, opts.signal);
  await waitFor(
    "the counter to count to 20",
    () => Promise.resolve(values(source.lines).length >= 20 || undefined),
  );

  const name = `move-${pod}`;
  say(`migrating it to node-b, following the source's log`);
  await lpm.create("podmigrations", NS, {
    apiVersion: "lpm.my.domain/v1",
    kind: "PodMigration",
    metadata: { name, namespace: NS },
    spec: { podName: pod, targetNode: "node-b", storageClassName: "demo-minio" },
  });
  const done: PodMigration = await followMigration(lpm, NS, name, new Progress());
  if (done.status?.phase !== "Succeeded") {
    say(`migration FAILED: ${done.status?.message}`);
    return { code: 1, migration: name };
  }
  const restored = done.status.restoredPodName!;
  say(`migration Succeeded: "${pod}" on node-a -> "${restored}" on node-b`);
  const ended = await Promise.race([
    source.ended.then(() => true),
    sleep(15_000).then(() => false),
  ]);
  const src = [...source.lines];
  const n = values(src).at(-1);
  if (n === undefined) return failed(name, `the source "${pod}" logged no value`);
  // The restored log starts with the checkpointed log replayed, the source's
  // lines byte for byte (timestamps too); what differs was printed on node-b.
  let got: LogLine[] = [];
  await waitFor("the restored counter to print", async () => {
    got = await readLog(http, restored);
    return got.length >= src.length + 3 || undefined;
  }, 30_000);
  let k = 0;
  while (k < src.length && got[k]?.ts === src[k].ts && got[k].text === src[k].text) k++;
  const first = values(got.slice(k))[0];
  say(`source's last value before the freeze (its own log): ${n}`);
  say(`restored pod's first new value (after ${k} replayed): ${first}`);
  if (k < src.length) {
    return failed(
      name,
      `the restored pod replays the source's log only up to ${got[k - 1]?.text}, but the ` +
        `source printed up to ${n}: it ran past its checkpoint, and ${
          src.length - k
        } of its values ran twice`,
    );
  }
  if (first !== n + 1) {
    return failed(name, `the restored pod's first new value is ${first}, not ${n} + 1`);
  }
  if (!ended) {
    return failed(name, `the source "${pod}" was still logging 15 s after the migration`);
  }
  const paused = (Date.parse(got[k].ts) - Date.parse(src[k - 1].ts)) / 1000;
  say(
    `checked: ${first} = ${n} + 1, the source stopped at ${n}; the counter paused ${
      paused.toFixed(2)
    } s`,
  );
  say(`timings: ${timingSummary(done)}`);
  return { code: 0, migration: name };
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (err) {
    console.error(`[demo] ERROR: ${(err as Error).message}`);
    Deno.exit(1);
  }
}
