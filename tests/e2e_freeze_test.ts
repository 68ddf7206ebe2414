/**
 * Live means frozen (issue 15), end to end on the real nodes: a 10 Hz counter
 * migrates node-a -> node-b while the test follows the source's log, and the
 * test proves that the source ran no instruction past its final checkpoint.
 * The source's log ends at N; the restored pod's log replays the checkpointed
 * log, then its first new line is N+1; no number is printed twice or missed
 * across the two logs; the status timings agree with the pause the workload
 * itself saw. Cases: one container, two containers, a Deployment's pod.
 *
 * Failure paths, for real on the nodes: a restore that fails on node-b (the
 * source's base image is deleted from the registry after the source started,
 * so node-b's containerd cannot pull it to restore the checkpoint) thaws the
 * source, which continues at N+1; a controller killed while the source is
 * frozen (in a private environment of this test, with a 15 s freeze deadline)
 * leaves the source thawed by its node's agent, never frozen forever, and
 * never two copies counting once the controller is back.
 *
 * Why timestamps and not numbers alone: numbers cannot tell a clone from a
 * migration. A source that runs on past its checkpoint C up to N logs
 * 1..N; the restored pod logs 1..C (replayed) then C+1, C+2... (new): the same
 * numbers. But containerd copies `container.log` from the checkpoint into the
 * restored container's log (`container_checkpoint_linux.go`), so replayed
 * lines keep the source's CRI timestamps, byte for byte, and new lines get new
 * ones. The replayed prefix is the longest prefix of the restored log that is
 * identical (timestamp and text) to the source's log, and it must be all of
 * it.
 *
 *   LPM_TEST_ENV=<state>/env.json deno test -A tests/e2e_freeze_test.ts
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import "../kube/http1.ts";
import { assert, assertEquals, assertGreater, assertMatch } from "@std/assert";
import { createMigration, openWorkspace } from "../testing/e2e.ts";
import { envTest, testEnv } from "../testing/env.ts";
import { pinnedReplicas } from "../testing/workloads.ts";
import {
  assertConsecutive,
  assertContinues,
  type Continuity,
  counted,
  COUNTER,
  counterPod,
  LogFollower,
  type LogLine,
  ms,
  numbers,
  readLog,
} from "../testing/counter_log.ts";
import {
  buildBusyboxRootfsTar,
  type EnvironmentInfo,
  pushImage,
  startEnvironment,
  waitFor,
} from "../localenv/mod.ts";
import type { LpmClient } from "../kube/lpm_client.ts";
import { type KubeHttp, kubeHttp } from "../kube/http.ts";
import type { PodMigration } from "../api/mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const CLASS = "e2e-freeze";
const REPO_ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Ctx {
  env: EnvironmentInfo;
  core: k8s.CoreV1Api;
  apps: k8s.AppsV1Api;
  lpm: LpmClient;
  http: KubeHttp;
  ns: string;
  image: string;
  nodeA: string;
  nodeB: string;
  close(): Promise<void>;
}

async function setup(env: EnvironmentInfo = testEnv()): Promise<Ctx> {
  if (!env.kube || !env.minio || !env.registry || (env.nodes?.length ?? 0) < 2 || !env.lpm) {
    throw new Error(
      `These tests need the control plane, MinIO, the registry, 2 nodes and lpm; the environment ` +
        `has nodes: ${env.nodes?.length ?? 0}, lpm: ${env.lpm ? "yes" : "no"}: run them with ` +
        `"deno task test"`,
    );
  }
  const { kc, core, apps, lpm, ns } = await openWorkspace(env, {
    ns: `e2e-frz-${crypto.randomUUID().slice(0, 6)}`,
    storageClass: { name: CLASS, prefix: "e2e-freeze/", repository: "lpm/e2e-freeze", reuse: true },
  });
  const http = kubeHttp(kc);
  return {
    env,
    core,
    apps,
    lpm,
    http,
    ns,
    image: env.nodeImages!.busybox,
    nodeA: env.nodes![0].name,
    nodeB: env.nodes![1].name,
    async close() {
      await core.deleteNamespace({ name: ns }).catch(() => {});
      http.close();
    },
  };
}

/**
 * The timings are honest: downtime runs from the freeze to the restored pod
 * running, is shorter than the total, and matches the pause the workload saw
 * between its last line on the source and its first on the target.
 */
function assertTimings(
  pm: PodMigration,
  cont: Continuity,
  what: string,
  opts: { lastToStart?: boolean } = {},
): number {
  const st = pm.status!;
  const t = st.timings ?? {};
  assert(st.frozenAt, `${what}: status.frozenAt is not set (was the source frozen at all?)`);
  assert(st.restoredRunningAt, `${what}: status.restoredRunningAt is not set`);
  assert(
    t.downtimeMs !== undefined && t.totalMs !== undefined,
    `${what}: timings ${JSON.stringify(t)}`,
  );
  assert(
    t.downtimeMs < t.totalMs,
    `${what}: downtimeMs ${t.downtimeMs} is not less than totalMs ${t.totalMs}`,
  );
  const frozen = ms(st.frozenAt);
  const span = ms(st.restoredRunningAt) - frozen;
  assert(
    Math.abs(t.downtimeMs - span) <= 1000,
    `${what}: downtimeMs ${t.downtimeMs} but restoredRunningAt - frozenAt is ${span} ms ` +
      `(${st.frozenAt} -> ${st.restoredRunningAt})`,
  );
  const last = ms(cont.lastSource.ts);
  const first = ms(cont.firstNew.ts);
  // The node timestamps a line when the shim reads it: a line written just
  // before the pause can be stamped a little after it.
  assert(
    last <= frozen + 300,
    `${what}: the source printed ${cont.n} at ${cont.lastSource.ts}, ${
      last - frozen
    } ms after frozenAt ${st.frozenAt}`,
  );
  assert(
    first > frozen,
    `${what}: the restored pod printed ${
      cont.n + 1
    } at ${cont.firstNew.ts}, before frozenAt ${st.frozenAt}`,
  );
  // The workload's pause spans the freeze and the restore: it is the downtime
  // plus at most one 0.1 s sleep each side. restoredRunningAt comes from the
  // container's startedAt, which the API gives in whole seconds, so the
  // downtime can read up to 1 s short; it can never read longer than the
  // pause of the pod's last container to start (the pod runs only then: a
  // container that starts earlier pauses for less than the downtime).
  const seen = first - last;
  const lastToStart = opts.lastToStart ?? true;
  assert(
    (!lastToStart || t.downtimeMs <= seen + 500) && t.downtimeMs >= seen - 1500,
    `${what}: the workload paused ${seen} ms between ${cont.n} and ${cont.n + 1}; ` +
      `status.timings.downtimeMs is ${t.downtimeMs}`,
  );
  console.error(
    `[e2e_freeze] ${what}: N=${cont.n}; downtime ${t.downtimeMs} ms (the workload saw ${seen} ms), ` +
      `total ${t.totalMs} ms; ${JSON.stringify(t)}`,
  );
  return seen;
}

// ------------------------------------------------------------ objects

async function runningPod(c: Ctx, pod: string): Promise<k8s.V1Pod> {
  return await waitFor(async () => {
    const p = await c.core.readNamespacedPod({ name: pod, namespace: c.ns });
    const cs = p.status?.containerStatuses ?? [];
    return cs.length === p.spec!.containers.length && cs.every((s) => s.state?.running)
      ? p
      : undefined;
  }, { what: `every container of pod "${pod}" to run`, timeoutMs: 90_000 });
}

async function migrate(
  c: Ctx,
  name: string,
  pod: string,
  extra: Record<string, unknown> = {},
): Promise<void> {
  await createMigration(c.lpm, { namespace: c.ns, name }, {
    pod,
    target: c.nodeB,
    storageClassName: CLASS,
    extra,
  });
}

async function finished(c: Ctx, name: string, timeoutMs = 120_000): Promise<PodMigration> {
  return await waitFor(async () => {
    const pm = await c.lpm.get<PodMigration>("podmigrations", c.ns, name);
    return pm?.status?.phase === "Succeeded" || pm?.status?.phase === "Failed" ? pm : undefined;
  }, { what: `PodMigration "${name}" to finish`, timeoutMs, intervalMs: 250 });
}

/** Asserts the PodMigration's SourceFrozen condition ended False with `reason`. */
function assertSourceFrozen(pm: PodMigration, reason: string): void {
  const cond = pm.status?.conditions?.find((x) => x.type === "SourceFrozen");
  assert(
    cond?.status === "False" && cond.reason === reason,
    `condition SourceFrozen should be False/${reason}; conditions: ${
      JSON.stringify(pm.status?.conditions?.map((x) => `${x.type}=${x.status}/${x.reason}`))
    }`,
  );
}

/** Asserts an Event `reason` was recorded for the migration (or its PodCheckpoint). */
async function assertEvent(c: Ctx, pm: PodMigration, reason: string): Promise<void> {
  const names = [pm.metadata!.name, pm.status?.podCheckpointRef?.name].filter(Boolean);
  const seen = await waitFor(async () => {
    const l = await c.core.listNamespacedEvent({ namespace: c.ns });
    const mine = l.items.filter((e) => names.includes(e.involvedObject.name));
    return mine.some((e) => e.reason === reason) ? true : mine.map((e) => e.reason);
  }, { what: `an Event ${reason} for "${names.join('", "')}"`, timeoutMs: 10_000 });
  assert(seen === true, `no Event ${reason}; Events: ${JSON.stringify(seen)}`);
}

/** The source's log stream ends once it is killed at hand-over; returns its lines. */
async function sourceEnded(f: LogFollower, what: string): Promise<LogLine[]> {
  await Promise.race([f.done, sleep(20_000)]);
  const ended = f.ended;
  await f.stop();
  assertEquals(f.problems, [], `${what}: the source's log changed between reads`);
  if (!ended) {
    // Still running 20 s after Succeeded: the continuity check says what it did.
    console.error(`[e2e_freeze] ${what}: the source's log did not end 20 s after Succeeded`);
  }
  return [...f.lines];
}

/** Reads the restored pod's log until it has `atLeast` lines. */
async function restoredLog(
  c: Ctx,
  pod: string,
  container: string,
  atLeast: number,
): Promise<LogLine[]> {
  let lines: LogLine[] = [];
  await waitFor(async () => {
    lines = await readLog(c, pod, container);
    return lines.length >= atLeast;
  }, {
    what: `the restored "${pod}/${container}" to log ${atLeast} lines (has ${lines.length})`,
    timeoutMs: 30_000,
  });
  return lines;
}

// ------------------------------------------------------------- tests

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name: "freeze e2e: a 10 Hz counter moves node-a -> node-b; the source's log ends at N, the " +
    "restored pod continues at N+1; downtime (freeze -> running) < total",
  ...opts,
  async fn() {
    const c = await setup();
    try {
      await c.core.createNamespacedPod({
        namespace: c.ns,
        body: counterPod("counter", c.nodeA, ["counter"], c.image),
      });
      await runningPod(c, "counter");
      const f = new LogFollower(c, "counter", "counter");
      await counted(f, 10);
      await migrate(c, "move", "counter");
      const pm = await finished(c, "move");
      assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
      const source = await sourceEnded(f, "one container");
      const restored = pm.status!.restoredPodName!;
      const p = await runningPod(c, restored);
      assertEquals(p.spec?.nodeName, c.nodeB);
      const cont = assertContinues(
        source,
        await restoredLog(c, restored, "counter", source.length + 10),
        "one container",
      );
      assertTimings(pm, cont, "one container");
      assert(f.ended, `the source still logged 20 s after the migration Succeeded`);
      assertSourceFrozen(pm, "Killed");
      await assertEvent(c, pm, "SourceKilled");
      const src = await c.core.readNamespacedPod({ name: "counter", namespace: c.ns })
        .catch(() => undefined);
      assert(!src || src.metadata?.deletionTimestamp, "the source pod is deleted");
    } finally {
      await c.close();
    }
  },
});

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name: "freeze e2e: a two-container pod is frozen as a whole; both containers end at their N " +
    "on node-a and continue at N+1 on node-b",
  ...opts,
  async fn() {
    const c = await setup();
    const names = ["left", "right"];
    try {
      await c.core.createNamespacedPod({
        namespace: c.ns,
        body: counterPod("duo", c.nodeA, names, c.image),
      });
      await runningPod(c, "duo");
      const fs = names.map((n) => new LogFollower(c, "duo", n));
      for (const f of fs) await counted(f, 10);
      await migrate(c, "move", "duo");
      const pm = await finished(c, "move");
      assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
      const restored = pm.status!.restoredPodName!;
      await runningPod(c, restored);
      const pauses: number[] = [];
      for (const f of fs) {
        const what = `container "${f.container}"`;
        const source = await sourceEnded(f, what);
        const cont = assertContinues(
          source,
          await restoredLog(c, restored, f.container, source.length + 10),
          what,
        );
        pauses.push(assertTimings(pm, cont, what, { lastToStart: false }));
        assert(f.ended, `${what}: the source still logged 20 s after the migration Succeeded`);
      }
      // The downtime ends when the pod's last container runs: it is never
      // longer than the longest pause a container saw.
      const downtime = pm.status!.timings!.downtimeMs!;
      assert(
        downtime <= Math.max(...pauses) + 500,
        `downtimeMs ${downtime} is longer than every container's pause (${pauses.join(", ")} ms)`,
      );
    } finally {
      await c.close();
    }
  },
});

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name: "freeze e2e: a Deployment's pod moves with strict continuity; the Deployment ends with " +
    "exactly one replica, the restored pod",
  ...opts,
  async fn() {
    const c = await setup();
    try {
      await c.apps.createNamespacedDeployment({
        namespace: c.ns,
        body: pinnedReplicas({
          app: "web",
          node: c.nodeA,
          podSpec: { automountServiceAccountToken: false },
          containers: [{ name: "counter", image: c.image, command: COUNTER }],
        }),
      });
      const srcPod = await waitFor(async () => {
        const l = await c.core.listNamespacedPod({ namespace: c.ns, labelSelector: "app=web" });
        return l.items.find((p) => p.status?.containerStatuses?.[0]?.state?.running);
      }, { what: "the Deployment's pod to run", timeoutMs: 90_000 });
      const pod = srcPod.metadata!.name!;
      const f = new LogFollower(c, pod, "counter");
      await counted(f, 10);
      await migrate(c, "move", pod);
      const pm = await finished(c, "move");
      assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
      const restored = pm.status!.restoredPodName!;
      const source = await sourceEnded(f, "Deployment pod");
      const cont = assertContinues(
        source,
        await restoredLog(c, restored, "counter", source.length + 10),
        "Deployment pod",
      );
      assertTimings(pm, cont, "Deployment pod");
      await waitFor(async () => {
        const l = await c.core.listNamespacedPod({ namespace: c.ns, labelSelector: "app=web" });
        const live = l.items.filter((p) => !p.metadata?.deletionTimestamp);
        return live.length === 1 && live[0].metadata?.name === restored;
      }, { what: "exactly the restored pod to serve the Deployment", timeoutMs: 60_000 });
      // Long enough for a ReplicaSet that miscounted to start a cold replica.
      await sleep(3_000);
      const dep = await c.apps.readNamespacedDeployment({ name: "web", namespace: c.ns });
      assertEquals(dep.status?.replicas, 1, JSON.stringify(dep.status));
      const l = await c.core.listNamespacedPod({ namespace: c.ns, labelSelector: "app=web" });
      assertEquals(
        l.items.filter((p) => !p.metadata?.deletionTimestamp).map((p) => p.metadata?.name),
        [restored],
      );
      // The survivor is the restored process, still counting on from N+1.
      const now = numbers(await readLog(c, restored, "counter"));
      assertConsecutive(now, "the restored pod's log");
      assertGreater(now.length, cont.n + 10);
    } finally {
      await c.close();
    }
  },
});

/**
 * Finds the freeze in a thawed source's log: the one pause that spans
 * `frozenAt`. Returns the last value before it and the pause's length.
 */
function thawedPause(
  lines: LogLine[],
  frozenAt: string,
  what: string,
): { n: number; pauseMs: number; resumedAt: number } {
  const frozen = ms(frozenAt);
  const j = lines.findIndex((l) => ms(l.ts) > frozen + 300);
  assert(j > 0, `${what}: the source printed nothing after frozenAt ${frozenAt}`);
  const before = numbers(lines.slice(0, j));
  const pauseMs = ms(lines[j].ts) - ms(lines[j - 1].ts);
  return { n: before.at(-1)!, pauseMs, resumedAt: ms(lines[j].ts) };
}

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name: "freeze e2e: a restore that fails for real on node-b (the base image is gone from the " +
    "registry) thaws the source: it continues at N+1 with no gap and no duplicate",
  ...opts,
  async fn() {
    const c = await setup();
    const host = c.env.registry!.host;
    const dir = await Deno.makeTempDir({ prefix: "lpm-e2e-freeze-" });
    let f: LogFollower | undefined;
    try {
      // A busybox of its own (its config names the namespace, so no other
      // image shares its digest): only node-a will ever have pulled it.
      const repo = `lpm/e2e-gone-${c.ns}`;
      const img = await pushImage(host, `${repo}:1`, {
        layers: [{ path: await buildBusyboxRootfsTar(`${dir}/rootfs.tar`) }],
        config: { Cmd: ["/bin/sh"], Env: ["PATH=/bin"], Labels: { "lpm.test/namespace": c.ns } },
      });
      await c.core.createNamespacedPod({
        namespace: c.ns,
        body: counterPod("counter", c.nodeA, ["counter"], img.reference),
      });
      await runningPod(c, "counter");
      f = new LogFollower(c, "counter", "counter");
      await counted(f, 10);
      // Node-b's containerd pulls a checkpoint's base image by NAME@DIGEST
      // when it restores; without its manifest the restore fails there.
      const del = await fetch(`http://${host}/v2/${repo}/manifests/${img.digest}`, {
        method: "DELETE",
      });
      await del.body?.cancel();
      assertEquals(del.status, 202, "the harness registry must allow deletes");
      const gone = await fetch(`http://${host}/v2/${repo}/manifests/${img.digest}`, {
        method: "HEAD",
        headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
      });
      await gone.body?.cancel();
      assertEquals(gone.status, 404, "the base image's manifest is gone");

      await migrate(c, "move", "counter");
      const pm = await finished(c, "move");
      assertEquals(pm.status?.phase, "Failed", `it was expected to fail: ${pm.status?.message}`);
      assertMatch(pm.status?.message ?? "", /pull|image/i, "the message says why");
      console.error(`[e2e_freeze] failed restore: ${pm.status?.message}`);
      assert(
        pm.status?.frozenAt,
        "status.frozenAt is not set: the source was never frozen, so nothing here proves a thaw",
      );
      // Thawed: the source goes on from where it stopped.
      const thawed = f;
      const frozen = ms(pm.status.frozenAt);
      await waitFor(
        () => thawed.lines.filter((l) => ms(l.ts) > frozen + 300).length >= 10,
        { what: "the source to print 10 values after the thaw", timeoutMs: 15_000 },
      );
      assertEquals(f.problems, []);
      const { n, pauseMs } = thawedPause(f.lines, pm.status.frozenAt, "thawed source");
      assertConsecutive(f.values, "the source's log across the freeze and the thaw");
      assert(pauseMs >= 500, `the source paused only ${pauseMs} ms around frozenAt`);
      console.error(
        `[e2e_freeze] failed restore: source frozen at ${n} for ${pauseMs} ms, ` +
          `then ${n + 1}`,
      );
      assertSourceFrozen(pm, "Thawed");
      await assertEvent(c, pm, "SourceThawed");
      // Only the source is left, the same container (a restart would count from 1).
      await waitFor(async () => {
        const l = await c.core.listNamespacedPod({ namespace: c.ns });
        return l.items.length === 1;
      }, { what: "the restored pod to be removed", timeoutMs: 60_000 });
      const src = await c.core.readNamespacedPod({ name: "counter", namespace: c.ns });
      assertEquals(src.metadata?.deletionTimestamp, undefined);
      assertEquals(src.status?.containerStatuses?.[0]?.restartCount, 0);
      assert(src.status?.containerStatuses?.[0]?.state?.running);
    } finally {
      await f?.stop();
      await c.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

envTest({ starts: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name: "freeze e2e: the controller killed while the source is frozen (private environment, " +
    "freezeDeadlineSeconds 15): the agent thaws the source within the deadline; the controller, " +
    "back, fails the migration; never two copies counting",
  ...opts,
  async fn() {
    const DEADLINE_S = 15;
    const env = await startEnvironment({
      parts: ["kube", "minio", "registry"],
      nodes: 2,
      lpm: true,
    });
    let controller: Deno.ChildProcess | undefined;
    let f: LogFollower | undefined;
    let c: Ctx | undefined;
    try {
      c = await setup(env.info);
      await c.core.createNamespacedPod({
        namespace: c.ns,
        body: counterPod("counter", c.nodeA, ["counter"], c.image),
      });
      await runningPod(c, "counter");
      f = new LogFollower(c, "counter", "counter");
      await counted(f, 10);
      const pid = env.info.lpm!.controller.pid;
      const argv = (await Deno.readTextFile(`/proc/${pid}/cmdline`)).split("\0").filter(Boolean);
      const environ = Object.fromEntries(
        (await Deno.readTextFile(`/proc/${pid}/environ`)).split("\0").filter(Boolean)
          .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
      );
      await migrate(c, "move", "counter", { freezeDeadlineSeconds: DEADLINE_S });
      const cc = c;
      const atFreeze = await waitFor(async () => {
        const pm = await cc.lpm.get<PodMigration>("podmigrations", cc.ns, "move");
        if (pm?.status?.phase === "Succeeded" || pm?.status?.phase === "Failed") {
          throw new Error(
            `The migration ended (${pm.status.phase}: ${pm.status.message}) ` +
              `before the test saw status.frozenAt`,
          );
        }
        return pm?.status?.frozenAt ? pm : undefined;
      }, { what: "status.frozenAt (the source frozen)", timeoutMs: 60_000, intervalMs: 50 });
      // The controller dies (its whole process group); nobody renews the freeze.
      Deno.kill(-pid, "SIGKILL");
      const killedAt = Date.now();
      console.error(
        `[e2e_freeze] controller killed in phase ${atFreeze.status!.phase}, ${
          killedAt - ms(atFreeze.status!.frozenAt!)
        } ms after frozenAt`,
      );
      const src = f;
      const frozenAt = atFreeze.status!.frozenAt!;
      await waitFor(() => src.lines.some((l) => ms(l.ts) > ms(frozenAt) + 300), {
        what: `the source to be thawed by its agent (deadline ${DEADLINE_S} s)`,
        timeoutMs: (DEADLINE_S + 8) * 1000,
        intervalMs: 100,
      }).catch(() => {
        throw new Error(
          `The source is still frozen ${DEADLINE_S + 8} s after the controller died ` +
            `(freezeDeadlineSeconds ${DEADLINE_S}): the agent did not thaw it`,
        );
      });
      const { n, pauseMs, resumedAt } = thawedPause(f.lines, frozenAt, "source");
      assert(
        resumedAt - killedAt <= (DEADLINE_S + 5) * 1000,
        `thawed ${resumedAt - killedAt} ms after the controller died (deadline ${DEADLINE_S} s)`,
      );
      console.error(
        `[e2e_freeze] controller killed: source frozen at ${n} for ${pauseMs} ms, ` +
          `thawed ${resumedAt - killedAt} ms after the kill`,
      );
      // With the controller dead nothing may have started a second copy.
      const pods = await c.core.listNamespacedPod({ namespace: c.ns });
      assertEquals(pods.items.map((p) => p.metadata?.name), ["counter"]);

      // The controller comes back, the same command line.
      const log = `${env.info.logDir}/controller-restarted.log`;
      controller = new Deno.Command("setsid", {
        args: ["bash", "-c", 'exec "$@" >>"$LPM_LOG" 2>&1 </dev/null', "--", ...argv],
        env: { ...environ, LPM_LOG: log },
        clearEnv: true,
        cwd: REPO_ROOT,
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      const pm = await finished(c, "move", 90_000);
      assertEquals(
        pm.status?.phase,
        "Failed",
        `the source ran on after its deadline thaw (${n + 1}...), so handing over would run ` +
          `those instructions twice; the migration ended ${pm.status?.phase}: ${pm.status?.message}`,
      );
      assert(pm.status?.message, "the failure says why");
      console.error(`[e2e_freeze] controller killed: ${pm.status?.message}`);
      assertSourceFrozen(pm, "DeadlineThawed");
      await assertEvent(c, pm, "SourceThawed");
      await waitFor(async () => {
        const l = await cc.core.listNamespacedPod({ namespace: cc.ns });
        return l.items.length === 1 && l.items[0].metadata?.name === "counter";
      }, { what: "only the source pod to be left", timeoutMs: 60_000 });
      const before = f.values.length;
      await sleep(1_500);
      assertGreater(f.values.length, before + 5, "the source counts on");
      assertConsecutive(f.values, "the source's log across the freeze and the deadline thaw");
      assertEquals(f.problems, []);
    } finally {
      await f?.stop();
      await c?.close();
      if (controller) {
        try {
          Deno.kill(-controller.pid, "SIGKILL");
        } catch {
          // already gone
        }
        await controller.status;
      }
      await env.stop();
    }
  },
});

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name: "freeze e2e: sourcePodPolicy Keep (a copy, asked for): the restored pod continues at N+1 " +
    "and the source is thawed after it runs, also continuing at N+1",
  ...opts,
  async fn() {
    const c = await setup();
    try {
      await c.core.createNamespacedPod({
        namespace: c.ns,
        body: counterPod("kept", c.nodeA, ["counter"], c.image),
      });
      await runningPod(c, "kept");
      const f = new LogFollower(c, "kept", "counter");
      await counted(f, 10);
      await migrate(c, "copy", "kept", { sourcePodPolicy: "Keep" });
      const pm = await finished(c, "copy");
      assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
      assertSourceFrozen(pm, "Thawed");
      await assertEvent(c, pm, "SourceThawed");
      // The source stays, thawed: it goes on from where it was frozen.
      await sleep(1500);
      await f.stop();
      const source = [...f.lines];
      const { n, pauseMs } = thawedPause(source, pm.status!.frozenAt!, "kept source");
      assertConsecutive(numbers(source), "the kept source, across its freeze");
      // The copy continues from the same N.
      const restored = await restoredLog(c, pm.status!.restoredPodName!, "counter", n + 5);
      const values = numbers(restored);
      const at = values.indexOf(n);
      assert(at >= 0 && values[at + 1] === n + 1, `the copy continues at ${n + 1}: ${values}`);
      const src = await c.core.readNamespacedPod({ name: "kept", namespace: c.ns });
      assertEquals(src.metadata?.deletionTimestamp, undefined, "the source pod is kept");
      console.error(
        `[e2e_freeze] Keep: both continue at ${n + 1}; the source paused ${pauseMs} ms`,
      );
    } finally {
      await c.close();
    }
  },
});
