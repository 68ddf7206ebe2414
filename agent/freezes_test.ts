import { assertEquals, assertMatch } from "@std/assert";
import { openFreezes } from "./freezes.ts";
import type { PodFreezer } from "./runtime/freeze.ts";

/**
 * A freezer whose tasks' states the test sets (the real one is exercised on
 * the nodes by tests/freeze_test.ts and tests/chaos/nodes_test.ts).
 */
function fakeFreezer(
  paused: Map<string, boolean>,
  thawed: string[],
  extra: { live?: { id: string; name: string }[]; killed?: string[] } = {},
): PodFreezer {
  return {
    liveContainers: () =>
      Promise.resolve([
        ...[...paused.keys()].map((id) => ({ id, name: `name-${id}` })),
        ...(extra.live ?? []),
      ]),
    pause: () => {
      for (const id of paused.keys()) paused.set(id, true);
      return Promise.resolve({
        containers: [...paused.keys()].map((id) => ({ id, name: `name-${id}` })),
        frozenAt: Date.now(),
        pauseMs: 1,
      });
    },
    isPaused: (id) => Promise.resolve(paused.get(id) ?? false),
    freeze: () => Promise.reject(new Error("not used")),
    thaw: (pod) => {
      thawed.push(pod.pod);
      return Promise.resolve([]);
    },
    kill: (pod) => {
      extra.killed?.push(...(pod.containers ?? []).map((c) => c.id));
      return Promise.resolve();
    },
  };
}

Deno.test("freezes: a container no longer paused (containerd restarted) ends the freeze as thawed on EXTEND and CONFIRM", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lpm-freezes-" });
  const paused = new Map([["c1", false], ["c2", false]]);
  const thawed: string[] = [];
  const how: string[] = [];
  const f = await openFreezes({
    dir: `${dir}/freezes`,
    freezer: fakeFreezer(paused, thawed),
    onThawed: (_r, h) => how.push(h),
  });
  try {
    const at = { namespace: "ns", pod: "counter" };
    assertEquals((await f.freeze({ key: "k1", ...at, deadlineSeconds: 60 })).state, "frozen");
    const ext = await f.control({ key: "k1", ...at, action: "EXTEND", deadlineSeconds: 60 });
    assertEquals(ext.state, "frozen", "every container still paused: renewed");

    // The runtime lost the task of c2 (UNKNOWN, killed and restarted by the kubelet).
    paused.set("c2", false);
    const lost = await f.control({ key: "k1", ...at, action: "EXTEND", deadlineSeconds: 60 });
    assertEquals(lost.state, "thawed");
    assertMatch(lost.message, /Container "name-c2" .* is no longer paused: its runtime lost/);
    assertEquals(thawed, ["counter"], "the rest of the pod is resumed");
    assertEquals(how, ["lost"], "not reported as a deadline thaw");
    // CONFIRM after that is refused: the hand-over must not go on.
    const confirm = await f.control({ key: "k1", ...at, action: "CONFIRM" });
    assertEquals(confirm.state, "thawed");
    assertEquals(
      [...Deno.readDirSync(`${dir}/freezes`)].filter((e) => !e.name.startsWith(".")),
      [],
    );

    // The same at CONFIRM directly.
    assertEquals((await f.freeze({ key: "k2", ...at, deadlineSeconds: 60 })).state, "frozen");
    paused.set("c1", false);
    const c2 = await f.control({ key: "k2", ...at, action: "CONFIRM" });
    assertEquals(c2.state, "thawed");
    assertMatch(c2.message, /Container "name-c1"/);
  } finally {
    f.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("freezes: an agent restart between CONFIRM and KILL: the retried CONFIRM answers confirmed and KILL kills", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lpm-freezes-" });
  const paused = new Map([["c1", false]]);
  const thawed: string[] = [];
  const at = { namespace: "ns", pod: "counter" };
  try {
    const a = await openFreezes({ dir: `${dir}/freezes`, freezer: fakeFreezer(paused, thawed) });
    await a.freeze({ key: "k1", ...at, deadlineSeconds: 60 });
    assertEquals((await a.control({ key: "k1", ...at, action: "CONFIRM" })).state, "confirmed");
    a.close();

    // The agent restarts: a new process on the same state dir.
    let killed = 0;
    const freezer = { ...fakeFreezer(paused, thawed), kill: () => Promise.resolve(void killed++) };
    const b = await openFreezes({ dir: `${dir}/freezes`, freezer });
    try {
      const again = await b.control({ key: "k1", ...at, action: "CONFIRM" });
      assertEquals(again.state, "confirmed", `the retried CONFIRM: ${again.message}`);
      assertEquals((await b.control({ key: "k1", ...at, action: "KILL" })).state, "killed");
      assertEquals(killed, 1);
      assertEquals(thawed, [], "never thawed");
      assertEquals((await b.control({ key: "k2", ...at, action: "STATUS" })).state, "unknown");
    } finally {
      b.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("freezes: a container that runs again as a new instance while its old task stays paused (the kubelet's restart after a containerd restart) ends the freeze: the old task is killed, never resumed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lpm-freezes-" });
  const paused = new Map([["c1", false]]);
  const live: { id: string; name: string }[] = [];
  const killed: string[] = [];
  const thawed: string[] = [];
  const f = await openFreezes({
    dir: `${dir}/freezes`,
    freezer: fakeFreezer(paused, thawed, { live, killed }),
  });
  try {
    const at = { namespace: "ns", pod: "counter" };
    await f.freeze({ key: "k1", ...at, deadlineSeconds: 60 });
    live.push({ id: "c1-new", name: "name-c1" }); // c1 is still paused
    const s = await f.control({ key: "k1", ...at, action: "CONFIRM" });
    assertEquals(s.state, "thawed");
    assertMatch(s.message, /Container "name-c1" \(c1\) .* runs again as a new instance \(c1-new\)/);
    assertEquals(killed, ["c1"], "the old, paused task is killed");
    assertEquals(thawed, [], "and not resumed");

    // The same found by the deadline: killed, not resumed.
    live.length = 0;
    killed.length = 0;
    const at2 = { namespace: "ns", pod: "other" };
    await f.freeze({ key: "k2", ...at2, deadlineSeconds: 10 });
    live.push({ id: "c1-new", name: "name-c1" });
    await f.control({ key: "k2", ...at2, action: "THAW" });
    assertEquals(killed, ["c1"]);
    assertEquals(thawed, []);
  } finally {
    f.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("freezes: a THAW is reported as asked for, not as a deadline thaw", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lpm-freezes-" });
  const how: string[] = [];
  const f = await openFreezes({
    dir: `${dir}/freezes`,
    freezer: fakeFreezer(new Map([["c1", false]]), []),
    onThawed: (_r, h) => how.push(h),
  });
  try {
    const at = { namespace: "ns", pod: "counter" };
    await f.freeze({ key: "k1", ...at, deadlineSeconds: 60 });
    const s = await f.control({ key: "k1", ...at, action: "THAW" });
    assertEquals([s.state, s.message], ["thawed", "Thawed on request"]);
    assertEquals(how, ["request"]);
  } finally {
    f.close();
    await Deno.remove(dir, { recursive: true });
  }
});
