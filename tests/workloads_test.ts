/**
 * Real programs migrate between the real local nodes (kubelet + containerd +
 * runc + CRIU, started by `deno task test`): Redis with a large in-memory data
 * set, nginx (master + 2 workers, listening socket, stub_status counters in
 * shared memory), a Python runtime with a few hundred MiB of heap and
 * threads, and a three-process Python program joined by a pipe and a shared
 * memory block. Every image is built by the project from Debian 12's packages
 * (localenv/workload_images.ts). Each program's state is read with its
 * own client (redis-cli, HTTP, the scripts' unix sockets) from the source just
 * before the migration and from the restored pod after it.
 *
 * What clients see: a migration moves the pod to a new node and a new pod IP,
 * so established TCP connections cannot follow it; listening sockets move with
 * the process, so the restored server accepts new connections at once
 * (checked below for Redis and nginx with fresh client connections). For a
 * connection open at the checkpoint, the client gets a reset (or EOF) when the source goes at hand-over, and must reconnect to
 * the new address (through a Service, in a real cluster). For that the nodes'
 * CRIU dumps connected sockets and restores them closed: containerd's CRI
 * checkpoint never asks for `--tcp-established` itself, so `hack/steps/criu.sh`
 * puts `tcp-established` and `tcp-close` in /etc/criu/runc.conf, the file runc
 * tells CRIU to read (without it CRIU refuses the dump: "inet: Connected TCP
 * socket, consider using --tcp-established option"). The last test checks
 * the client's side and that the restored server takes new connections.
 *
 * The source keeps running while it is checkpointed (the kubelet's
 * leave-running dump), so the checks compare state that does not change
 * after the "before" read (the data sets) or counters that only grow.
 *
 * Every program runs as uid 0 in its container: this VM lacks
 * CAP_SYS_RESOURCE, and CRIU fails here on any process of a non-root uid
 * with "Can't get rlimit 0: Operation not permitted" (a limit of this VM,
 * not of real nodes).
 */
import * as k8s from "@kubernetes/client-node";
import "../kube/http1.ts";
import { assert, assertEquals, assertGreater, assertGreaterOrEqual } from "@std/assert";
import { envTest, requirePart, testEnv } from "../testing/env.ts";
import {
  createMinioClass,
  createNamespace,
  kubectl,
  pushWorkloadImage,
  waitFor,
} from "../localenv/mod.ts";
import { LpmClient } from "../kube/lpm_client.ts";
import type { ContainerCheckpoint, PodMigration } from "../api/mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const CLASS = "workloads-minio";
const CONTAINER = "app";

interface Ctx {
  core: k8s.CoreV1Api;
  lpm: LpmClient;
  kubeconfig: string;
  image: string;
  nodeA: string;
  nodeB: string;
}

const workloadsDir = new URL("./workloads/", import.meta.url).pathname;

let ctx: Promise<Ctx> | undefined;

/** Clients, the storage class and the image: made once for the whole file. */
function context(): Promise<Ctx> {
  ctx ??= (async () => {
    const env = testEnv();
    const kube = requirePart("kube");
    if ((env.nodes?.length ?? 0) < 2 || !env.lpm) {
      throw new Error(
        `The workload tests need 2 nodes and lpm in the environment; it has ${
          env.nodes?.length ?? 0
        } node(s) and lpm ${env.lpm ? "running" : "absent"}: run them with "deno task test"`,
      );
    }
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kube.kubeconfig);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const lpm = new LpmClient(kc);
    const registry = requirePart("registry").host;
    const t0 = Date.now();
    const image = await pushWorkloadImage(registry, {
      name: "workloads",
      packages: ["redis-server", "redis-tools", "nginx-light", "python3", "busybox-static"],
      files: {
        "/etc/lpm/heap.py": await Deno.readTextFile(`${workloadsDir}/heap.py`),
        "/etc/lpm/pipeline.py": await Deno.readTextFile(`${workloadsDir}/pipeline.py`),
        "/etc/lpm/nginx.conf": await Deno.readTextFile(`${workloadsDir}/nginx.conf`),
      },
    });
    console.error(`workload image ${image} ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await createMinioClass(core, lpm, {
      name: CLASS,
      minio: requirePart("minio"),
      prefix: "workloads/",
      repository: `${registry}/lpm/workloads-checkpoints`,
      reuse: true,
    });
    return {
      core,
      lpm,
      kubeconfig: kube.kubeconfig,
      image,
      nodeA: env.nodes![0].name,
      nodeB: env.nodes![1].name,
    };
  })();
  return ctx;
}

/** A fresh namespace for one test, deleted afterwards. */
async function withNamespace(fn: (c: Ctx, ns: string) => Promise<void>): Promise<void> {
  const c = await context();
  const ns = `wl-${crypto.randomUUID().slice(0, 6)}`;
  await createNamespace(c.core, ns);
  try {
    await fn(c, ns);
  } finally {
    await c.core.deleteNamespace({ name: ns }).catch(() => {});
  }
}

async function startPod(
  c: Ctx,
  ns: string,
  name: string,
  command: string[],
  env: Record<string, string> = {},
): Promise<void> {
  await c.core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name },
      spec: {
        nodeName: c.nodeA,
        containers: [{
          name: CONTAINER,
          image: c.image,
          command,
          env: Object.entries(env).map(([k, v]) => ({ name: k, value: v })),
          // uid 0: CRIU cannot dump non-root processes on this VM (see the header).
          securityContext: { runAsUser: 0 },
        }],
      },
    },
  });
  await waitFor(async () => {
    const p = await c.core.readNamespacedPod({ name, namespace: ns });
    return p.status?.phase === "Running";
  }, { what: `pod "${ns}/${name}" to run`, timeoutMs: 90_000 });
}

/** Runs `cmd` in the pod's container with `kubectl exec`; returns stdout. */
async function exec(c: Ctx, ns: string, pod: string, cmd: string[]): Promise<string> {
  return await kubectl(c.kubeconfig, ["-n", ns, "exec", pod, "-c", CONTAINER, "--", ...cmd]);
}

/** Waits until `exec(cmd)` succeeds with output matching `want`; returns the output. */
async function execUntil(
  c: Ctx,
  ns: string,
  pod: string,
  cmd: string[],
  want: RegExp,
): Promise<string> {
  return await waitFor(async () => {
    const out = await exec(c, ns, pod, cmd).catch(() => "");
    return want.test(out) ? out : undefined;
  }, { what: `"${cmd.join(" ")}" in "${ns}/${pod}" to print ${want}`, timeoutMs: 90_000 });
}

/** The JSON line a workload script serves on its unix socket. */
async function askSocket<T>(c: Ctx, ns: string, pod: string, path: string): Promise<T> {
  const code = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n" +
    "print(s.makefile().readline().strip())";
  const out = await exec(c, ns, pod, ["python3", "-c", code, path]);
  try {
    return JSON.parse(out) as T;
  } catch {
    throw new Error(`The workload in "${ns}/${pod}" answered "${out}" on "${path}", not JSON`);
  }
}

/**
 * RSS of the container's processes in KiB (VmRSS summed over /proc, leaving
 * out the shell that reads it; builtins only, so no other process is counted).
 */
async function rssKiB(c: Ctx, ns: string, pod: string): Promise<number> {
  const script = 't=0; for d in /proc/[0-9]*; do [ "${d#/proc/}" = "$$" ] && continue; ' +
    'while read k v u; do [ "$k" = VmRSS: ] && t=$((t+v)); done < "$d/status"; done 2>/dev/null; ' +
    "echo $t";
  const out = (await exec(c, ns, pod, ["sh", "-c", script])).trim();
  if (!/^\d+$/.test(out)) throw new Error(`Cannot read the RSS of "${ns}/${pod}": got "${out}"`);
  return Number(out);
}

/** Migrates `pod` to node-b through the MinIO class (more spec in `extra`) and waits for the end. */
async function migrate(
  c: Ctx,
  ns: string,
  pod: string,
  extra: Record<string, unknown> = {},
): Promise<PodMigration> {
  const name = `move-${pod}`;
  await c.lpm.create("podmigrations", ns, {
    apiVersion: "lpm.my.domain/v1",
    kind: "PodMigration",
    metadata: { name, namespace: ns },
    spec: { podName: pod, targetNode: c.nodeB, storageClassName: CLASS, ...extra },
  });
  const pm = await waitFor(async () => {
    const pm = await c.lpm.get<PodMigration>("podmigrations", ns, name);
    return pm?.status?.phase === "Succeeded" || pm?.status?.phase === "Failed" ? pm : undefined;
  }, { what: `PodMigration "${ns}/${name}" to finish`, timeoutMs: 240_000, intervalMs: 250 });
  assertEquals(pm.status?.phase, "Succeeded", `PodMigration "${name}": ${pm.status?.message}`);
  const restored = pm.status!.restoredPodName!;
  const p = await waitFor(async () => {
    const p = await c.core.readNamespacedPod({ name: restored, namespace: ns });
    return p.status?.phase === "Running" ? p : undefined;
  }, { what: `restored pod "${ns}/${restored}" to run`, timeoutMs: 60_000 });
  assertEquals(p.spec?.nodeName, c.nodeB, `restored pod "${restored}" runs on the target`);
  return pm;
}

/** One console line per workload: its size and what the migration cost. */
async function report(
  c: Ctx,
  ns: string,
  what: string,
  rss: number,
  pm: PodMigration,
): Promise<void> {
  const cc = await c.lpm.get<ContainerCheckpoint>(
    "containercheckpoints",
    ns,
    `${pm.metadata!.name}-${CONTAINER}`,
  ).catch(() => undefined);
  const s = cc?.status?.criuStats;
  const t = pm.status?.timings ?? {};
  const sec = (ms?: number) => ms === undefined ? "?" : `${(ms / 1000).toFixed(2)} s`;
  console.error(
    `[workload] ${what}: RSS ${(rss / 1024).toFixed(0)} MiB` +
      (s?.pagesWritten !== undefined
        ? `, CRIU wrote ${(s.pagesWritten * 4 / 1024).toFixed(0)} MiB of pages`
        : "") +
      (s?.frozenTimeUs ? ` (CRIU froze it ${sec(s.frozenTimeUs / 1000)})` : "") +
      (cc?.status?.archive
        ? `, archive ${(cc.status.archive.size / 2 ** 20).toFixed(0)} MiB`
        : "") +
      `; checkpoint ${sec(t.checkpointMs)}, transfer ${sec(t.transferMs)}, restore ${
        sec(t.restoreMs)
      }, total ${sec(t.totalMs)}, downtime ${sec(t.downtimeMs)}`,
  );
  assert(t.totalMs !== undefined && t.downtimeMs !== undefined, "the migration records timings");
}

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name: "workloads: redis-server with ~150 MiB of keys and no persistence keeps its data set",
  ...opts,
  async fn() {
    await withNamespace(async (c, ns) => {
      // No RDB, no AOF: the data exists only in the process's memory.
      await startPod(c, ns, "redis", [
        "redis-server",
        "--save",
        "",
        "--appendonly",
        "no",
        "--enable-debug-command",
        "yes",
        "--protected-mode",
        "no",
      ]);
      const cli = (...args: string[]) => exec(c, ns, "redis", ["redis-cli", ...args]);
      await execUntil(c, ns, "redis", ["redis-cli", "PING"], /PONG/);
      const token = crypto.randomUUID();
      assertEquals((await cli("DEBUG", "POPULATE", "150000", "lpm", "1000")).trim(), "OK");
      assertEquals((await cli("SET", "lpm:token", token)).trim(), "OK");
      const state = async (pod: string) => {
        const r = (...args: string[]) =>
          exec(c, ns, pod, ["redis-cli", ...args]).then((s) => s.trim());
        const info = await r("INFO", "server");
        return {
          dbsize: Number(await r("DBSIZE")),
          digest: await r("DEBUG", "DIGEST"),
          token: await r("GET", "lpm:token"),
          sample: await r("GET", "lpm:123456"),
          uptime: Number(info.match(/uptime_in_seconds:(\d+)/)?.[1]),
          runId: info.match(/run_id:(\w+)/)?.[1],
        };
      };
      const before = await state("redis");
      const rss = await rssKiB(c, ns, "redis");
      assertEquals(before.dbsize, 150_001);
      assertGreater(rss, 100 * 1024, `redis holds its data set in memory (RSS ${rss} KiB)`);
      const pm = await migrate(c, ns, "redis");
      const restored = pm.status!.restoredPodName!;
      const after = await state(restored);
      assertEquals(after.dbsize, before.dbsize, "DBSIZE");
      assertEquals(after.digest, before.digest, "DEBUG DIGEST of the whole data set");
      assertEquals(after.token, token);
      assertEquals(after.sample, before.sample);
      assertEquals(after.runId, before.runId, "the same server process (run_id), not a new one");
      assertGreaterOrEqual(after.uptime, before.uptime, "uptime continues");
      // A new client connection to the restored server, and a write it serves.
      const r2 = (...args: string[]) =>
        exec(c, ns, restored, ["redis-cli", ...args]).then((s) => s.trim());
      assertEquals(await r2("INCR", "lpm:after"), "1");
      assertEquals(Number(await r2("DBSIZE")), before.dbsize + 1);
      await report(c, ns, "redis", rss, pm);
    });
  },
});

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name: "workloads: nginx (master + 2 workers) serves the same page and its counters continue",
  ...opts,
  async fn() {
    await withNamespace(async (c, ns) => {
      const token = crypto.randomUUID();
      await startPod(c, ns, "nginx", [
        "sh",
        "-c",
        'mkdir -p /srv/www && echo "lpm workload page $TOKEN" >/srv/www/index.html && ' +
        "exec nginx -c /etc/lpm/nginx.conf",
      ], { TOKEN: token });
      const body = `lpm workload page ${token}\n`;
      const get = (pod: string, path: string) =>
        exec(c, ns, pod, ["wget", "-qO-", `http://127.0.0.1:8080${path}`]);
      // Several requests in one exec, each a new connection (busybox wget).
      const getMany = (pod: string, n: number) =>
        exec(c, ns, pod, [
          "sh",
          "-c",
          `for i in $(seq ${n}); do wget -qO- http://127.0.0.1:8080/ || exit 1; done`,
        ]);
      const status = async (pod: string) => {
        const text = await get(pod, "/status");
        const m = text.match(/server accepts handled requests\s+(\d+)\s+(\d+)\s+(\d+)/);
        if (!m) throw new Error(`Unexpected stub_status from "${ns}/${pod}": "${text}"`);
        return { accepts: Number(m[1]), requests: Number(m[3]) };
      };
      const processes = async (pod: string) =>
        (await exec(c, ns, pod, ["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '; echo"]))
          .match(/nginx: (master|worker) process/g)?.sort() ?? [];
      await execUntil(c, ns, "nginx", ["wget", "-qO-", "http://127.0.0.1:8080/"], /lpm workload/);
      assertEquals(await getMany("nginx", 20), body.repeat(20));
      const before = await status("nginx");
      const procsBefore = await processes("nginx");
      assertEquals(procsBefore, [
        "nginx: master process",
        "nginx: worker process",
        "nginx: worker process",
      ]);
      const rss = await rssKiB(c, ns, "nginx");
      assertGreaterOrEqual(before.requests, 22);
      const pm = await migrate(c, ns, "nginx");
      const restored = pm.status!.restoredPodName!;
      assertEquals(await processes(restored), procsBefore, "master and both workers restored");
      // New connections to the restored listening socket, served by its workers.
      assertEquals(await getMany(restored, 10), body.repeat(10));
      const after = await status(restored);
      // The counters live in memory the workers share; a fresh nginx would be at 12.
      assertGreater(after.requests, before.requests + 10, `requests: ${JSON.stringify(after)}`);
      assertGreater(after.accepts, before.accepts + 10, `accepts: ${JSON.stringify(after)}`);
      await report(c, ns, "nginx", rss, pm);
    });
  },
});

interface HeapState {
  digest: string;
  counters: number[];
  threads: number;
}

/**
 * A Python runtime with ~200 MiB of heap (its digest asked over a unix
 * socket) and 3 counting threads, migrated stop-and-copy or with pre-copy
 * rounds (leave-running dumps of a threaded process serving a socket).
 */
function pythonHeap(preCopy?: { rounds: number }): void {
  envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
    name: "workloads: a Python runtime with ~200 MiB of heap and 3 counting threads" +
      (preCopy ? `, migrated with spec.preCopy (${preCopy.rounds} rounds)` : ""),
    ...opts,
    async fn() {
      await withNamespace(async (c, ns) => {
        await startPod(c, ns, "python", ["python3", "-u", "/etc/lpm/heap.py"], {
          HEAP_MIB: "200",
          THREADS: "3",
        });
        await waitFor(async () => {
          const log = await c.core.readNamespacedPodLog({ name: "python", namespace: ns });
          return String(log).includes("ready");
        }, { what: `"${ns}/python" to build its heap`, timeoutMs: 90_000 });
        const before = await askSocket<HeapState>(c, ns, "python", "/tmp/heap.sock");
        const rss = await rssKiB(c, ns, "python");
        assertGreater(rss, 200 * 1024, `the heap is in memory (RSS ${rss} KiB)`);
        assertEquals(before.threads, 4);
        const pm = await migrate(c, ns, "python", preCopy ? { preCopy } : {});
        if (preCopy) {
          const rounds = pm.status?.preCopy?.containers[0]?.rounds ?? [];
          assertGreaterOrEqual(rounds.length, 1, "pre-copy rounds ran");
          assertGreater(rounds[0].pages, 200 * 256, "round 1 dumped the heap");
          const phases = (pm.status?.phaseTransitionTimestamps ?? []).map((p) => p.phase);
          assert(phases.includes("PreCopying"), `phases ${phases.join(" -> ")}`);
        }
        const restored = pm.status!.restoredPodName!;
        const after = await askSocket<HeapState>(c, ns, restored, "/tmp/heap.sock");
        await new Promise((r) => setTimeout(r, 500));
        const later = await askSocket<HeapState>(c, ns, restored, "/tmp/heap.sock");
        assertEquals(after.digest, before.digest, "SHA-256 of the heap data");
        assertEquals(after.threads, 4, "the main thread and the 3 counters");
        for (let i = 0; i < 3; i++) {
          assertGreaterOrEqual(after.counters[i], before.counters[i], `counter ${i} not reset`);
          assertGreater(later.counters[i], after.counters[i], `thread ${i} keeps counting`);
        }
        await report(c, ns, preCopy ? "python heap, pre-copy" : "python heap", rss, pm);
      });
    },
  });
}

pythonHeap();
pythonHeap({ rounds: 2 });

interface PipelineState {
  produced: number;
  consumed: number;
  gaps: number;
  digest: string;
  pids: number[];
  alive: boolean[];
}

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name: "workloads: producer and consumer processes over a pipe and shared memory continue",
  ...opts,
  async fn() {
    await withNamespace(async (c, ns) => {
      await startPod(c, ns, "pipeline", ["python3", "-u", "/etc/lpm/pipeline.py"]);
      const ask = (pod: string) =>
        askSocket<PipelineState>(c, ns, pod, "/tmp/pipeline.sock").catch(() => undefined);
      await waitFor(async () => ((await ask("pipeline"))?.consumed ?? 0) > 100, {
        what: `"${ns}/pipeline" to pass numbers`,
        timeoutMs: 60_000,
      });
      const before = (await ask("pipeline"))!;
      const rss = await rssKiB(c, ns, "pipeline");
      const pm = await migrate(c, ns, "pipeline");
      const restored = pm.status!.restoredPodName!;
      const after = await waitFor(() => ask(restored), {
        what: `the restored "${ns}/${restored}" to answer`,
      });
      await new Promise((r) => setTimeout(r, 500));
      const later = (await ask(restored))!;
      assertEquals(after.pids, before.pids, "the same three processes (pids kept by CRIU)");
      assertEquals(after.alive, [true, true]);
      assertEquals(after.digest, before.digest, "the shared block's data");
      assertGreaterOrEqual(after.consumed, before.consumed, "the consumer's count was not reset");
      assertGreater(later.consumed, after.consumed, "the consumer keeps receiving");
      assertGreater(later.produced, after.produced, "the producer keeps sending");
      assertEquals(later.gaps, 0, "no number lost or repeated in the pipe");
      await report(c, ns, "pipeline", rss, pm);
    });
  },
});

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name:
    "workloads: a server holding an established TCP connection migrates; the client's connection is reset and the restored server takes new ones",
  ...opts,
  async fn() {
    await withNamespace(async (c, ns) => {
      await startPod(c, ns, "web", [
        "sh",
        "-c",
        "mkdir -p /srv/www && echo page >/srv/www/index.html && exec nginx -c /etc/lpm/nginx.conf",
      ]);
      const web = await c.core.readNamespacedPod({ name: "web", namespace: ns });
      // A client in another pod on the same node (the host cannot reach pod IPs):
      // one keep-alive connection, a request on it every 0.3 s, its local port in every line.
      const client = [
        "import socket, sys, time",
        "s = socket.create_connection((sys.argv[1], 8080))",
        "port = s.getsockname()[1]",
        "while True:",
        "    try:",
        "        s.sendall(b'GET / HTTP/1.1\\r\\nHost: web\\r\\n\\r\\n')",
        "        d = s.recv(4096)",
        "        print(f'port={port} ' + ('ok' if d.startswith(b'HTTP/1.1 200') else f'eof {d!r}'))",
        "    except OSError as e:",
        "        print(f'port={port} error {e!r}')",
        "    time.sleep(0.3)",
      ].join("\n");
      await startPod(c, ns, "client", ["python3", "-u", "-c", client, web.status!.podIP!]);
      const lines = async () =>
        String(await c.core.readNamespacedPodLog({ name: "client", namespace: ns }))
          .split("\n").filter((l) => l.startsWith("port="));
      await waitFor(async () => (await lines()).length >= 3, {
        what: `the client in "${ns}" to hold a connection`,
      });
      // The node's CRIU dumps the connected socket (tcp-established in
      // /etc/criu/runc.conf, which runc passes to CRIU) and restores it closed
      // (tcp-close): the connection cannot follow the pod to its new address.
      const pm = await migrate(c, ns, "web");
      const restored = pm.status!.restoredPodName!;
      // The client's connection ends (reset or EOF) once the source is gone, and never answers again.
      const all = await waitFor(async () => {
        const l = await lines();
        return l.some((x) => !x.endsWith(" ok")) ? l : undefined;
      }, { what: "the client's connection to end", timeoutMs: 60_000 });
      const firstBad = all.findIndex((x) => !x.endsWith(" ok"));
      assertGreater(firstBad, 0, "the connection served requests before the migration");
      assertEquals(new Set(all.map((l) => l.split(" ")[0])).size, 1, "one connection throughout");
      await new Promise((r) => setTimeout(r, 1000));
      const later = (await lines()).slice(firstBad);
      assertEquals(later.filter((l) => l.endsWith(" ok")), [], `after the reset: ${later}`);
      // The restored server (same processes, listening socket restored) takes new connections.
      const page = await exec(c, ns, restored, [
        "sh",
        "-c",
        "for i in 1 2 3; do wget -qO- http://127.0.0.1:8080/ || exit 1; done",
      ]);
      assertEquals(page, "page\n".repeat(3));
      console.error(`[workload] nginx with a connected client: the client saw "${all[firstBad]}"`);
    });
  },
});
