/**
 * The chaos suite's harness (tests/chaos/, issue 21): a 10 Hz counter pod on
 * node-a migrated to node-b while a part of the real environment is killed,
 * stopped or restarted (localenv/faults.ts) at a chosen moment, and the one
 * invariant every cell must hold ({@linkcode assertSurvived}).
 *
 * The moment is chosen by watching what the parts themselves publish: the
 * PodMigration's phase and status, and the agents' operation records
 * (`<agent state-dir>/operations/<id>.json`: `step` "checkpointing" is the
 * dump, `localPaths` set means the archive is on the node and the upload
 * runs, "downloading archive"/"restoring" on the target).
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import "../kube/http1.ts";
import { assert, assertEquals, assertGreater, assertMatch } from "@std/assert";
import type { PodMigration } from "../api/mod.ts";
import { type KubeHttp, kubeHttp } from "../kube/http.ts";
import type { LpmClient } from "../kube/lpm_client.ts";
import {
  ctrTasks,
  environmentFaults,
  type EnvironmentInfo,
  type FaultPart,
  type Faults,
  waitFor,
} from "../localenv/mod.ts";
import {
  assertConsecutive,
  assertContinues,
  counted,
  counterPod,
  LogFollower,
  type LogLine,
  ms,
  numbers,
  readLog,
} from "./counter_log.ts";
import { createMigration, openWorkspace } from "./e2e.ts";

const CLASS = "chaos";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One chaos cell's world: clients, its namespace, both nodes, the faults. */
export type { FaultPart } from "../localenv/mod.ts";

export interface ChaosCtx {
  env: EnvironmentInfo;
  core: k8s.CoreV1Api;
  lpm: LpmClient;
  http: KubeHttp;
  ns: string;
  image: string;
  nodeA: string;
  nodeB: string;
  faults: Faults;
  /** Starts every part a cell left down, deletes the namespace. */
  close(): Promise<void>;
}

/** The parts a cell may take down; `close` starts each that is down. */
const PARTS = (env: EnvironmentInfo): FaultPart[] => [
  "kube-apiserver",
  "registry",
  "minio",
  ...(env.nodes ?? []).flatMap((n) => [`containerd:${n.name}`, `kubelet:${n.name}`] as FaultPart[]),
  ...(env.lpm?.agents ?? []).map((a) => `agent:${a.node}` as FaultPart),
  "controller",
];

/** Opens a cell in `env` (a namespace `chaos-<cell>-<random>` with a MinIO class). */
export async function openChaos(env: EnvironmentInfo, cell: string): Promise<ChaosCtx> {
  if (!env.kube || !env.minio || !env.registry || (env.nodes?.length ?? 0) < 2 || !env.lpm) {
    throw new Error("The chaos cells need kube, MinIO, the registry, 2 nodes and lpm");
  }
  const { kc, core, lpm, ns } = await openWorkspace(env, {
    ns: `chaos-${cell}-${crypto.randomUUID().slice(0, 4)}`,
    storageClass: { name: CLASS, prefix: "chaos/", repository: "lpm/chaos", reuse: true },
  });
  const http = kubeHttp(kc);
  const faults = environmentFaults(env);
  return {
    env,
    core,
    lpm,
    http,
    ns,
    image: env.nodeImages!.busybox,
    nodeA: env.nodes![0].name,
    nodeB: env.nodes![1].name,
    faults,
    async close() {
      for (const p of PARTS(env)) {
        if (!faults.pid(p)) await faults.start(p);
      }
      // Not waited for (10 s a cell): the invariant checked what is left.
      await core.deleteCollectionNamespacedPod({ namespace: ns, gracePeriodSeconds: 0 })
        .catch(() => {});
      await core.deleteNamespace({ name: ns }).catch(() => {});
      http.close();
    },
  };
}

/** Starts the counter pod "counter" on node-a; returns its log follower once it logged 10 values. */
export async function startCounter(c: ChaosCtx): Promise<LogFollower> {
  await c.core.createNamespacedPod({
    namespace: c.ns,
    body: counterPod("counter", c.nodeA, ["counter"], c.image),
  });
  await waitFor(async () => {
    const p = await c.core.readNamespacedPod({ name: "counter", namespace: c.ns });
    return p.status?.containerStatuses?.[0]?.state?.running;
  }, { what: `pod "counter" to run`, timeoutMs: 90_000 });
  const f = new LogFollower(c, "counter", "counter");
  await counted(f, 10);
  return f;
}

/** An agent operation record as the agent keeps it on disk. */
export interface AgentOperation {
  id: string;
  kind?: string;
  phase?: string;
  step?: string;
  localPaths?: string[];
  bytesDone?: number;
}

/** The operation records of `node`'s agent. */
export async function agentOperations(c: ChaosCtx, node: string): Promise<AgentOperation[]> {
  const dir = `${c.env.lpm!.agents.find((a) => a.node === node)!.stateDir}/operations`;
  const ops: AgentOperation[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (!e.name.endsWith(".json")) continue;
    const text = await Deno.readTextFile(`${dir}/${e.name}`).catch(() => "");
    try {
      ops.push(JSON.parse(text));
    } catch {
      // being rewritten
    }
  }
  return ops;
}

/**
 * Follows one PodMigration "move" of pod "counter" to node-b: its status
 * every 50 ms, and the restored pod's log as soon as its name is known (a
 * restored pod that ran and was deleted must not have counted on).
 */
export class MigrationWatch {
  /** The newest status read. */
  pm?: PodMigration;
  /** Every phase seen, in order. */
  readonly phases: string[] = [];
  /** The restored pod's log, once `status.restoredPodName` was seen. */
  restored?: LogFollower;
  #stopped = false;
  readonly #loop: Promise<void>;

  constructor(private readonly c: ChaosCtx, readonly name = "move") {
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      const pm = await this.c.lpm.get<PodMigration>("podmigrations", this.c.ns, this.name)
        .catch(() => undefined); // the API server may be down: that is a cell
      if (pm) {
        this.pm = pm;
        const phase = pm.status?.phase;
        if (phase && this.phases.at(-1) !== phase) this.phases.push(phase);
        const r = pm.status?.restoredPodName;
        if (r && !this.restored) this.restored = new LogFollower(this.c, r, "counter");
      }
      await sleep(50);
    }
  }

  /** True once the migration ended. */
  get ended(): boolean {
    return ["Succeeded", "Failed"].includes(this.pm?.status?.phase ?? "");
  }

  /**
   * Waits (polling every 20 ms) until `pred` holds; throws when the
   * migration ended first, naming `what`.
   */
  async until(what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 90_000) {
    await waitFor(async () => {
      if (await pred()) return true;
      if (this.ended) {
        throw new Error(
          `The migration ended (${this.pm!.status!.phase}: ${this.pm!.status!.message}) ` +
            `before ${what}; phases seen: ${this.phases.join(" -> ")}`,
        );
      }
      return false;
    }, { what, timeoutMs, intervalMs: 20 });
  }

  /** Waits until the migration ends (Succeeded or Failed). */
  async finished(timeoutMs = 180_000): Promise<PodMigration> {
    await waitFor(() => this.ended, {
      what: `PodMigration "${this.name}" to end (phases seen: ${this.phases.join(" -> ")})`,
      timeoutMs,
      intervalMs: 100,
    });
    return this.pm!;
  }

  /** Stops watching and following. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
    await this.restored?.stop();
  }
}

/** Creates the migration "move" of "counter" to node-b and watches it. */
export async function migrateCounter(
  c: ChaosCtx,
  spec: { freezeDeadlineSeconds?: number; timeoutSeconds?: number } = {},
): Promise<MigrationWatch> {
  await createMigration(c.lpm, { namespace: c.ns, name: "move" }, {
    pod: "counter",
    target: c.nodeB,
    storageClassName: CLASS,
    extra: spec,
  });
  return new MigrationWatch(c);
}

/** A cell's expectation: which ends its fault allows, and how a failure must name it. */
export interface Expectation {
  /** The fault, for messages, e.g. "controller SIGKILL in Checkpointing". */
  fault: string;
  /** What a Failed migration's message must match (it names the fault). */
  reason: RegExp;
  /** The migration's freezeDeadlineSeconds (the source may not stay frozen longer). */
  freezeDeadlineSeconds: number;
  /**
   * The fault's known outcome, stated by the cell: "source-restarted-cold"
   * (containerd restarted on the source node while the pod was frozen: its
   * CRI plugin cannot load a PAUSED task, and the kubelet restarts the
   * container from scratch; see docs/freeze.md). Only then may the
   * surviving copy have counted from 1 again.
   */
  knownOutcome?: "source-restarted-cold";
}

/** What {@linkcode assertSurvived} found, for the cell's log line. */
export interface Outcome {
  phase: "Succeeded" | "Failed";
  message: string;
  /** The longest pause in the source's log, ms. */
  longestPauseMs: number;
  survivor: string;
}

/**
 * The chaos invariant, after the migration ended: it ended Succeeded, or
 * Failed with a message naming the fault; exactly one copy counts (never
 * two, never none); no value is printed twice across the source's and the
 * restored pod's logs, and none is missed except where the migration failed
 * and the source was thawed (a pause, not a gap in the numbers); the source
 * was never frozen past the freeze deadline; nothing is left behind (no
 * restored pod of a failed migration, no frozen task on either node, no
 * deadline record on the source's agent, no archive of the namespace in the
 * kubelets' checkpoint directories).
 */
export async function assertSurvived(
  c: ChaosCtx,
  w: MigrationWatch,
  source: LogFollower,
  exp: Expectation,
): Promise<Outcome> {
  const pm = await w.finished();
  const st = pm.status!;
  const phase = st.phase as Outcome["phase"];
  const what = `${exp.fault}: ${phase}`;
  if (phase === "Failed") assertMatch(st.message ?? "", exp.reason, `${what}: the reason`);
  // Exactly one copy: the restored pod if it succeeded, the source if not.
  const survivor = phase === "Succeeded" ? st.restoredPodName! : "counter";
  await waitFor(async () => {
    const l = await c.core.listNamespacedPod({ namespace: c.ns });
    const names = l.items.map((p) => p.metadata!.name!);
    return names.length === 1 && names[0] === survivor ? true : undefined;
  }, { what: `${what}: only pod "${survivor}" to be left`, timeoutMs: 90_000 }).catch(async (e) => {
    const l = await c.core.listNamespacedPod({ namespace: c.ns });
    // The controller's own account of this namespace: its environment (and log) goes with the run.
    console.error(`[chaos] ${what}: controller log for ${c.ns}:\n${controllerLog(c)}`);
    throw new Error(`${e.message}; pods: ${l.items.map((p) => p.metadata?.name).join(", ")}`);
  });
  const pod = await c.core.readNamespacedPod({ name: survivor, namespace: c.ns });
  const cs = pod.status?.containerStatuses?.[0];
  assert(cs?.state?.running, `${what}: the survivor "${survivor}" does not run`);
  const restarts = cs.restartCount ?? 0;
  if (exp.knownOutcome !== "source-restarted-cold") {
    assertEquals(restarts, 0, `${what}: "${survivor}" was restarted (counted from 1 again)`);
  }
  // It counts on, consecutively.
  const a = numbers(await readLog(c, survivor, "counter"));
  await sleep(1_500);
  const b = numbers(await readLog(c, survivor, "counter"));
  assertGreater(b.length, a.length + 5, `${what}: "${survivor}" does not count on`);
  const longestPauseMs = await assertValues(c, w, source, exp, pm);
  await assertNothingLeft(c, pm, what);
  return { phase, message: st.message ?? "", longestPauseMs, survivor };
}

/** The controller log's lines about the cell's namespace (the last 60), or why there are none. */
function controllerLog(c: ChaosCtx): string {
  try {
    const lines = Deno.readTextFileSync(`${c.env.logDir}/controller.log`).split("\n")
      .filter((l) => l.includes(c.ns));
    return lines.slice(-60).join("\n") || "(no line names it)";
  } catch (err) {
    return `(cannot read it: ${(err as Error).message})`;
  }
}

function longestPause(lines: LogLine[]): number {
  let max = 0;
  for (let i = 1; i < lines.length; i++) max = Math.max(max, ms(lines[i].ts) - ms(lines[i - 1].ts));
  return max;
}

/** No duplicate, no gap in the numbers, no freeze past the deadline. */
async function assertValues(
  c: ChaosCtx,
  w: MigrationWatch,
  source: LogFollower,
  exp: Expectation,
  pm: PodMigration,
): Promise<number> {
  const what = `${exp.fault}: ${pm.status!.phase}`;
  // A cold restart rewrites the log the follower reads: accepted only as the
  // stated known outcome of a migration that failed; handed over, it means
  // the source re-ran its values from 1 before the restored pod went on.
  if (exp.knownOutcome !== "source-restarted-cold" || pm.status!.phase === "Succeeded") {
    assertEquals(
      source.problems,
      [],
      `${what}: the source's log changed between reads (it was restarted)`,
    );
  }
  if (pm.status!.phase === "Succeeded") {
    await Promise.race([source.done, sleep(20_000)]);
    await source.stop();
    const src = [...source.lines];
    const restored = await readLog(c, pm.status!.restoredPodName!, "counter");
    assertContinues(src, restored, what);
    return longestPause(src);
  }
  // Failed: the source was thawed (or, the stated known outcome, restarted).
  await sleep(1_000);
  await source.stop();
  const src = [...source.lines];
  const pause = longestPause(src);
  if (exp.knownOutcome === "source-restarted-cold") {
    // The follower reads the current container's log: a cold restart counts from 1.
    assertConsecutive(
      numbers(src.slice(-5)),
      `${what}: the cold-restarted source`,
      numbers(src.slice(-5))[0],
    );
  } else {
    assertConsecutive(numbers(src), `${what}: the source's log across the freeze and the thaw`);
  }
  // Frozen no longer than the deadline, or (a controller renewing it) than
  // the migration ran: thawed by the time it failed.
  const resumed = src.find((l) => ms(l.ts) > ms(pm.status!.frozenAt ?? l.ts) + 300);
  const thawedLate = resumed ? ms(resumed.ts) - ms(pm.status!.completionTime!) : 0;
  assert(
    pause <= (exp.freezeDeadlineSeconds + 5) * 1000 || thawedLate <= 5_000,
    `${what}: the source paused ${pause} ms (freezeDeadlineSeconds ${exp.freezeDeadlineSeconds}), ` +
      `thawed ${thawedLate} ms after the migration failed`,
  );
  // A restored pod that ran and was removed must not have counted on: its
  // new values (after the replayed prefix) would be the source's again.
  if (w.restored) {
    await w.restored.stop();
    const r = w.restored.lines;
    let k = 0;
    while (k < r.length && k < src.length && r[k].ts === src[k].ts && r[k].text === src[k].text) {
      k++;
    }
    const fresh = new Set(numbers(r.slice(k)));
    const twice = numbers(src).filter((v) => fresh.has(v));
    assertEquals(
      twice,
      [],
      `${what}: the restored pod "${w.restored.pod}" printed values the thawed source printed too`,
    );
  }
  return pause;
}

/** No restored pod of a failed migration, no frozen task, no deadline record, no stray archive. */
async function assertNothingLeft(c: ChaosCtx, pm: PodMigration, what: string): Promise<void> {
  for (const node of c.env.nodes!) {
    const paused = (await ctrTasks(node.containerdSocket)).filter((t) => t.status === "PAUSED");
    assertEquals(paused, [], `${what}: tasks left frozen on ${node.name}`);
    const archives: string[] = [];
    for await (const e of Deno.readDir(node.checkpointDir)) {
      if (e.name.includes(`_${c.ns}-`)) archives.push(e.name);
    }
    if (pm.status!.phase === "Failed") {
      assertEquals(archives, [], `${what}: archives of the failed migration left on ${node.name}`);
    }
  }
  const agent = c.env.lpm!.agents.find((a) => a.node === c.nodeA)!;
  const uid = pm.status?.podCheckpointRef?.name;
  await waitFor(async () => {
    const left: string[] = [];
    for await (const e of Deno.readDir(`${agent.stateDir}/freezes`)) {
      const text = await Deno.readTextFile(`${agent.stateDir}/freezes/${e.name}`).catch(() => "");
      if (text.includes(`"${c.ns}"`)) left.push(e.name);
    }
    return left.length === 0 ? true : undefined;
  }, { what: `${what}: the freeze record of "${uid}" to go`, timeoutMs: 15_000 });
}

/** One cell: the fault, how a failure must name it, and when and how to inject it. */
export interface Cell extends Omit<Expectation, "freezeDeadlineSeconds"> {
  /** Short name (namespace, log lines). */
  name: string;
  /** The migration's spec fields (default freezeDeadlineSeconds 30, timeoutSeconds 90). */
  spec?: { freezeDeadlineSeconds?: number; timeoutSeconds?: number };
  /** Injects the fault once the migration runs: waits for its moment, breaks, heals. */
  inject(c: ChaosCtx, w: MigrationWatch): Promise<void>;
}

/**
 * Runs `cell` in `env`: the counter on node-a, its migration to node-b, the
 * fault, then {@linkcode assertSurvived}. Logs the outcome and the seconds it
 * took; every part the cell took down runs again afterwards.
 */
export async function runCell(env: EnvironmentInfo, cell: Cell): Promise<Outcome> {
  const t0 = Date.now();
  const spec = { freezeDeadlineSeconds: 30, timeoutSeconds: 90, ...cell.spec };
  const c = await openChaos(env, cell.name);
  let source: LogFollower | undefined;
  let w: MigrationWatch | undefined;
  try {
    source = await startCounter(c);
    w = await migrateCounter(c, spec);
    await cell.inject(c, w);
    const out = await assertSurvived(c, w, source, {
      ...cell,
      freezeDeadlineSeconds: spec.freezeDeadlineSeconds,
    });
    console.error(
      `[chaos] ${cell.fault}: ${out.phase}${out.message ? ` (${out.message})` : ""}; phases ` +
        `${w.phases.join(" -> ")}; longest source pause ${out.longestPauseMs} ms; survivor ` +
        `"${out.survivor}"; ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
    return out;
  } finally {
    await w?.stop();
    await source?.stop();
    await c.close();
  }
}
