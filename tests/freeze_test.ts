/**
 * The frozen final checkpoint on the harness's real containerd nodes
 * (`agent/runtime/freeze.ts`): a 10 Hz counter pod on node-a is frozen as a
 * whole through containerd, dumped while frozen through the kubelet, and
 * stays frozen. Its log gains nothing while frozen; the archive is complete
 * (checkpointctl reads it, same members as a plain kubelet checkpoint); the
 * archive restores on node-b the way migrations restore (OCI checkpoint image
 * in the harness registry, the migration's restored-pod spec) and continues at
 * the source's last value + 1; then the source is killed without running
 * again. Other cases: freeze then thaw continues with no gap and no duplicate
 * (two containers), and the freeze deadline thaws it, across an agent restart.
 *
 *   LPM_TEST_ENV=<env>/env.json deno test -A tests/freeze_test.ts
 * @module
 */
import { assert, assertEquals, assertGreaterOrEqual } from "@std/assert";
import type * as k8s from "@kubernetes/client-node";
import { envTest, requirePart, testEnv } from "../testing/env.ts";
import { counterScript, kubectl, tool, waitFor } from "../localenv/mod.ts";
import type { NodeInfo } from "../localenv/mod.ts";
import { kubeHttp, loadKubeConfig } from "../kube/config.ts";
import { createKubeletDriver } from "../agent/runtime/kubelet.ts";
import { connectContainerd, type ContainerdTasks } from "../agent/runtime/containerd_tasks.ts";
import { createPodFreezer, type FrozenPod, type PodFreezer } from "../agent/runtime/freeze.ts";
import { FreezeDeadlines, type FreezeRecord } from "../agent/runtime/freeze_deadline.ts";
import { buildCheckpointImage, pushImage } from "../oci/mod.ts";
import { buildRestoredPod } from "../controllers/restored_pod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

interface Ctx {
  kc: string;
  ns: string;
  a: NodeInfo;
  b: NodeInfo;
  busybox: string;
  containerd: ContainerdTasks;
  freezer: PodFreezer;
  dump: ReturnType<typeof createKubeletDriver>;
  close(): Promise<void>;
}

async function setup(tag: string): Promise<Ctx> {
  const env = testEnv();
  const kube = requirePart("kube");
  if (!env.nodes || env.nodes.length < 2 || !env.nodeImages) {
    throw new Error(
      `This test needs 2 real nodes, the environment has ${env.nodes?.length ?? 0}: run it with ` +
        `"deno task test" or start one with "deno task cluster:up --nodes 2"`,
    );
  }
  const [a, b] = env.nodes;
  const kc = kube.kubeconfig;
  const ns = `lpm-freeze-${tag}-${crypto.randomUUID().slice(0, 6)}`;
  await kubectl(kc, ["create", "namespace", ns]);
  await waitFor(
    () => kubectl(kc, ["-n", ns, "get", "serviceaccount", "default"]).then(() => true, () => false),
    { what: `the default ServiceAccount of "${ns}"`, timeoutMs: 30_000, intervalMs: 200 },
  );
  const http = kubeHttp(loadKubeConfig(kc));
  const dump = createKubeletDriver({
    nodeName: a.name,
    access: { mode: "proxy", kube: http },
    kubeletRootDir: a.rootDir,
    runtimeVersion: "containerd://2.2",
  });
  const containerd = connectContainerd(a.containerdSocket);
  const freezer = createPodFreezer({ containerd, dump: dump.checkpoint });
  return {
    kc,
    ns,
    a,
    b,
    busybox: env.nodeImages.busybox,
    containerd,
    freezer,
    dump,
    async close() {
      // Never leave a frozen pod behind, whatever failed.
      await freezer.thaw({ namespace: ns, pod: "counter" }).catch(() => {});
      containerd.close();
      dump.close();
      http.close();
      await kubectl(kc, ["delete", "namespace", ns, "--wait=false"]).catch(() => {});
    },
  };
}

/** A pod of 10 Hz counters (one per container name), on `node`. */
function counterPod(c: Ctx, name: string, containers: string[], node: string): k8s.V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: c.ns },
    spec: {
      nodeName: node,
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 0,
      restartPolicy: "Never",
      containers: containers.map((n) => ({
        name: n,
        image: c.busybox,
        command: ["/bin/sh", "-c", counterScript(0.1)],
      })),
    },
  };
}

async function podJson(c: Ctx, pod: string): Promise<k8s.V1Pod> {
  return JSON.parse(await kubectl(c.kc, ["-n", c.ns, "get", "pod", pod, "-o", "json"]));
}

async function apply(c: Ctx, pod: k8s.V1Pod): Promise<void> {
  await kubectl(c.kc, ["apply", "-f", "-"], JSON.stringify(pod));
  let last = "";
  await waitFor(async () => {
    const p = await podJson(c, pod.metadata!.name!);
    last = JSON.stringify(p.status?.containerStatuses?.map((s) => s.state));
    return (p.status?.containerStatuses ?? []).length === pod.spec!.containers.length &&
      p.status!.containerStatuses!.every((s) => s.state?.running);
  }, { what: `pod "${pod.metadata!.name}" running`, timeoutMs: 90_000, intervalMs: 300 })
    .catch((err) => {
      throw new Error(`${(err as Error).message}; last states: ${last}`);
    });
}

/** The counter values in a container's log, in order. */
async function values(c: Ctx, pod: string, container: string): Promise<number[]> {
  const out = await kubectl(c.kc, ["-n", c.ns, "logs", pod, "-c", container]);
  return out.split("\n").filter((l) => /^\d+$/.test(l.trim())).map(Number);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Asserts that values run 1, 2, 3, ... with no gap and no duplicate. */
function assertConsecutive(v: number[], what: string): void {
  for (let i = 0; i < v.length; i++) {
    if (v[i] !== i + 1) {
      throw new Error(
        `${what}: value ${i + 1} is ${v[i]} (around: ${v.slice(Math.max(0, i - 3), i + 3)})`,
      );
    }
  }
}

/** Waits until every container logged at least `n` values. */
async function counting(c: Ctx, pod: string, containers: string[], n: number): Promise<void> {
  for (const name of containers) {
    await waitFor(async () => (await values(c, pod, name)).length >= n, {
      what: `container "${name}" of "${pod}" to log ${n} values`,
      timeoutMs: 30_000,
    });
  }
}

/** Freezes the pod, then checks for ~3 s that no container logs anything new. */
async function freezeAndHold(c: Ctx, pod: string, containers: string[]) {
  const frozen = await c.freezer.freeze({ namespace: c.ns, pod }, { workDir: "/tmp" });
  assertEquals(frozen.containers.map((x) => x.name), [...containers].sort());
  const atFreeze = new Map<string, number[]>();
  for (const n of containers) atFreeze.set(n, await values(c, pod, n));
  await sleep(3_000);
  for (const n of containers) {
    const now = await values(c, pod, n);
    assertEquals(
      now.length,
      atFreeze.get(n)!.length,
      `container "${n}" logged ${now.slice(atFreeze.get(n)!.length)} while frozen`,
    );
    assertConsecutive(now, `log of frozen "${n}"`);
  }
  // What the runtime and the kubelet think of it meanwhile (docs/freeze.md).
  for (const x of frozen.containers) {
    assertEquals((await c.containerd.state(x.id)).status, "paused");
  }
  const p = await podJson(c, pod);
  for (const s of p.status!.containerStatuses!) {
    assert(s.state?.running, `the kubelet reports "${s.name}" as ${JSON.stringify(s.state)}`);
  }
  return { frozen, last: new Map([...atFreeze].map(([n, v]) => [n, v.at(-1)!])) };
}

async function tarMembers(path: string): Promise<string[]> {
  const out = await new Deno.Command("tar", { args: ["-tf", path], stdout: "piped" }).output();
  assert(out.success, `tar -tf ${path} failed`);
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean)
    .map((m) => m.replace(/^\.\//, "").replace(/\/$/, ""))
    .filter((m) => m && m !== ".");
}

/** Member names with pids and ids made generic (they differ between two processes). */
function memberShapes(members: string[]): string[] {
  return [...new Set(members.map((m) => m.replace(/\d+/g, "N")))].sort();
}

async function tarJson(path: string, member: string): Promise<Record<string, unknown>> {
  const out = await new Deno.Command("tar", {
    args: ["-xOf", path, member],
    stdout: "piped",
  }).output();
  if (!out.success) {
    const alt = await new Deno.Command("tar", {
      args: ["-xOf", path, `./${member}`],
      stdout: "piped",
    })
      .output();
    assert(alt.success, `no "${member}" in ${path}`);
    return JSON.parse(new TextDecoder().decode(alt.stdout));
  }
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

async function checkpointctl(archive: string): Promise<Record<string, unknown>> {
  const out = await new Deno.Command(tool("checkpointctl"), {
    args: ["inspect", "--format", "json", archive],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(out.success, `checkpointctl inspect: ${new TextDecoder().decode(out.stderr)}`);
  const info = JSON.parse(new TextDecoder().decode(out.stdout));
  return Array.isArray(info) ? info[0] : info;
}

function report(what: string, f: FrozenPod): void {
  console.error(
    `[freeze_test] ${what}: pause ${f.pauseMs} ms, dump ${f.dumpMs} ms (${
      f.containers.map((x) => `${x.name} ${x.dumpMs} ms`).join(", ")
    })`,
  );
}

envTest({ uses: ["kube", "registry", "nodes"] }, {
  name: "freeze: a frozen, dumped counter logs nothing; its archive matches the kubelet's and " +
    "restores on node-b at the source's last value + 1; kill ends the source without a new value",
  ...opts,
  async fn() {
    const c = await setup("restore");
    const r = requirePart("registry");
    const cleanup: string[] = [];
    try {
      const src = counterPod(c, "counter", ["counter"], c.a.name);
      // A plain kubelet checkpoint of a twin pod on the same node is the reference layout.
      await apply(c, src);
      await apply(c, { ...counterPod(c, "twin", ["counter"], c.a.name) });
      await counting(c, "counter", ["counter"], 10);

      const { frozen, last } = await freezeAndHold(c, "counter", ["counter"]);
      report("one container", frozen);
      const archive = frozen.containers[0].archivePath;
      cleanup.push(archive);
      const n = last.get("counter")!;

      // The archive is complete: checkpointctl reads it, and it has the same
      // members (pids aside) and the same metadata fields as the kubelet's own.
      const info = await checkpointctl(archive);
      assertEquals(info.container_name ?? info.name, "counter", JSON.stringify(info));
      assertEquals(info.engine, "containerd");
      const ref = await c.dump.checkpoint(
        { namespace: c.ns, pod: "twin", container: "counter" },
        { workDir: "/tmp", leaveRunning: true },
      );
      cleanup.push(ref.archivePath);
      assertEquals(
        memberShapes(await tarMembers(archive)),
        memberShapes(await tarMembers(ref.archivePath)),
      );
      for (const f of ["config.dump", "spec.dump", "status.dump", "status"]) {
        const mine = await tarJson(archive, f);
        const theirs = await tarJson(ref.archivePath, f);
        assertEquals(Object.keys(mine).sort(), Object.keys(theirs).sort(), `keys of ${f}`);
      }

      // The archive as the migration publishes it: an OCI checkpoint image by
      // the project's builder, pushed to the harness registry.
      const layoutDir = await Deno.makeTempDir({ prefix: "lpm-freeze-oci-" });
      cleanup.push(layoutDir);
      const podSpec = await podJson(c, "counter");
      const image = await buildCheckpointImage(archive, {
        containerName: "counter",
        layoutDir,
        compression: "none",
        source: { pod: "counter", namespace: c.ns, node: c.a.name },
        runtime: frozen.containers[0].runtime,
        podSpec: JSON.stringify(podSpec),
      });
      const pushed = await pushImage(
        image,
        `${r.host}/lpm-freeze-test/counter:${c.ns}`,
        { insecure: true },
      );

      // The restored pod as the migration builds it, on node-b.
      const restored = buildRestoredPod(podSpec, {
        name: "restored",
        targetNode: c.b.name,
        images: { counter: pushed.reference },
        migrationName: "freeze-test",
      });
      delete restored.metadata!.resourceVersion;
      await apply(c, restored);
      let got: number[] = [];
      await waitFor(async () => {
        got = await values(c, "restored", "counter");
        return got.length >= n + 5;
      }, { what: "the restored counter to log 5 new values", timeoutMs: 30_000 });
      // containerd replays the checkpointed log (1..n) into the restored
      // container's log; what follows was printed by the restored process.
      assertConsecutive(got.slice(0, n), "the replayed source log");
      assertEquals(
        got[n],
        n + 1,
        `the source's last value was ${n}; the restored pod's first new value is ${got[n]}`,
      );
      assertConsecutive(got, "the restored log");

      // Hand-over: kill the frozen source. It must not print anything more.
      const pid = (await c.containerd.state(frozen.containers[0].id)).pid;
      await c.freezer.kill({ namespace: c.ns, pod: "counter", containers: frozen.containers });
      assertEquals(
        (await c.containerd.state(frozen.containers[0].id)).status.match(/stopped|absent/)?.[0] !==
          undefined,
        true,
      );
      await Deno.stat(`/proc/${pid}`).then(
        () => {
          throw new Error(`the source's process ${pid} still exists after kill`);
        },
        () => {},
      );
      const term = await waitFor(async () => {
        const s = (await podJson(c, "counter")).status?.containerStatuses?.[0]?.state;
        return s?.terminated;
      }, { what: "the kubelet to report the source terminated", timeoutMs: 30_000 });
      assertEquals(term.exitCode, 137, JSON.stringify(term));
      const after = await values(c, "counter", "counter");
      assertEquals(after.at(-1), n, `the source printed ${after.slice(n)} after its checkpoint`);
    } finally {
      await c.close();
      for (const p of cleanup) await Deno.remove(p, { recursive: true }).catch(() => {});
    }
  },
});

envTest({ uses: ["kube", "nodes"] }, {
  name: "freeze: two containers frozen together and dumped, then thawed: both continue at N+1, " +
    "no gap, no duplicate",
  ...opts,
  async fn() {
    const c = await setup("thaw");
    const names = ["left", "right"];
    const archives: string[] = [];
    try {
      await apply(c, counterPod(c, "counter", names, c.a.name));
      await counting(c, "counter", names, 10);
      const { frozen, last } = await freezeAndHold(c, "counter", names);
      report("two containers", frozen);
      archives.push(...frozen.containers.map((x) => x.archivePath));
      for (const x of frozen.containers) {
        const info = await checkpointctl(x.archivePath);
        assertEquals(info.container_name ?? info.name, x.name);
      }
      // Both were frozen before either was dumped: the dump of the second
      // started after the first finished, and neither logged in between.
      assertEquals(await c.freezer.thaw({ namespace: c.ns, pod: "counter" }), [
        ...frozen.containers.map((x) => x.id),
      ]);
      assertEquals(await c.freezer.thaw({ namespace: c.ns, pod: "counter" }), [], "idempotent");
      await sleep(1_500);
      for (const n of names) {
        const v = await values(c, "counter", n);
        assertGreaterOrEqual(v.length, last.get(n)! + 5, `"${n}" did not continue`);
        assertEquals(v[last.get(n)!], last.get(n)! + 1, `"${n}" after the thaw`);
        assertConsecutive(v, `log of thawed "${n}"`);
      }
    } finally {
      await c.close();
      for (const p of archives) await Deno.remove(p).catch(() => {});
    }
  },
});

envTest({ uses: ["kube", "nodes"] }, {
  name: "freeze: the deadline thaws a pod nobody handed over, also after an agent restart",
  ...opts,
  async fn() {
    const c = await setup("deadline");
    const stateDir = await Deno.makeTempDir({ prefix: "lpm-freeze-state-" });
    const archives: string[] = [];
    try {
      await apply(c, counterPod(c, "counter", ["counter"], c.a.name));
      await counting(c, "counter", ["counter"], 10);
      const pod = { namespace: c.ns, pod: "counter" };
      const frozen = await c.freezer.freeze(pod, { workDir: "/tmp" });
      archives.push(...frozen.containers.map((x) => x.archivePath));
      const n = (await values(c, "counter", "counter")).at(-1)!;
      const thaw = (rec: FreezeRecord) =>
        c.freezer.thaw({ namespace: rec.namespace, pod: rec.pod, containers: rec.containers });
      const first = await FreezeDeadlines.open({ dir: `${stateDir}/freezes`, thaw });
      await first.arm({
        key: "mig-1",
        ...pod,
        containers: frozen.containers.map(({ id, name }) => ({ id, name })),
        frozenAt: frozen.frozenAt,
        deadline: Date.now() + 4_000,
      });
      // The agent dies before the deadline; a new one takes over from disk.
      first.close();
      await sleep(1_000);
      assertEquals((await c.containerd.state(frozen.containers[0].id)).status, "paused");
      const events: string[] = [];
      const second = await FreezeDeadlines.open({
        dir: `${stateDir}/freezes`,
        thaw,
        onEvent: (e) => events.push(e.type),
      });
      await waitFor(() => events.includes("thawed"), {
        what: "the deadline to thaw the pod",
        timeoutMs: 10_000,
        intervalMs: 100,
      });
      second.close();
      const thawedAt = Date.now();
      assert(thawedAt - frozen.frozenAt >= 4_000, "thawed before the deadline");
      assertEquals((await c.containerd.state(frozen.containers[0].id)).status, "running");
      await sleep(1_000);
      const v = await values(c, "counter", "counter");
      assertEquals(v[n], n + 1, "the thawed counter continues where it stopped");
      assertConsecutive(v, "log after the deadline's thaw");
      assertEquals([...Deno.readDirSync(`${stateDir}/freezes`)], [], "the record is gone");
    } finally {
      await c.close();
      for (const p of archives) await Deno.remove(p).catch(() => {});
      await Deno.remove(stateDir, { recursive: true });
    }
  },
});
