/**
 * Pre-copy through a PodMigration (issue 20, point 3; docs/pre-copy.md), on
 * the real nodes: a pod of two containers, a 10 Hz counter and the memory
 * toucher (64 MiB of incompressible data, 1 % of its pages rewritten per
 * second, a counter once a second), migrates node-a -> node-b with
 * `spec.preCopy.rounds: 3`.
 *
 * What must hold: the migration passes through PreCopying before the source
 * is frozen, and records each container's rounds (a layer each, round 2
 * on only with the pages changed since the round before) and parent image; both
 * containers continue on node-b with no gap and no duplicate (the source's
 * log ends at N, the restored one replays it and goes on at N+1, as in the
 * frozen-source tests); the toucher's final archive is incremental (a
 * fraction of its 64 MiB), its checkpoint image's first layers are the
 * rounds' (pulled on node-b during pre-copy), and CRIU's restore on node-b
 * read pages from the parent chain.
 *
 * Cost: about 40 s (a pre-copy of 64 MiB, rounds a second apart).
 *
 *   LPM_TEST_ENV=<state>/env.json deno test -A tests/e2e_pre_copy_migration_test.ts
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import "../kube/http1.ts";
import { assert, assertEquals, assertGreater, assertLess, assertMatch } from "@std/assert";
import { createMigration, openWorkspace } from "../testing/e2e.ts";
import { envTest, testEnv } from "../testing/env.ts";
import {
  assertContinues,
  counted,
  COUNTER,
  LogFollower,
  type LogLine,
  readLog,
} from "../testing/counter_log.ts";
import { memoryToucherCommand, memoryToucherImage } from "../testing/memory_toucher.ts";
import { waitFor } from "../localenv/mod.ts";
import { kubeHttp } from "../kube/http.ts";
import { parseReference, RegistryClient } from "../oci/mod.ts";
import type { ContainerCheckpoint, PodCheckpoint, PodMigration } from "../api/mod.ts";

const CLASS = "e2e-pre-copy";
const TOUCHER_MIB = 64;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The layers of a pushed image (plain HTTP registry of the environment). */
async function layersOf(reference: string): Promise<string[]> {
  const ref = parseReference(reference);
  const client = new RegistryClient(ref.host, { insecure: true });
  try {
    const m = await client.getManifest(ref.repository, ref.digest ?? ref.tag ?? "latest");
    const doc = JSON.parse(new TextDecoder().decode(m.bytes)) as { layers: { digest: string }[] };
    return doc.layers.map((l) => l.digest);
  } finally {
    client.close();
  }
}

/** The source's log stream ends once it is killed at hand-over; returns its lines. */
async function sourceEnded(f: LogFollower, what: string): Promise<LogLine[]> {
  await Promise.race([f.done, sleep(20_000)]);
  await f.stop();
  assertEquals(f.problems, [], `${what}: the source's log changed between reads`);
  assert(f.ended, `${what}: the source still logged 20 s after the migration Succeeded`);
  return [...f.lines];
}

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name: "pre-copy migration: spec.preCopy moves a counter and a 64 MiB memory toucher " +
    "node-a -> node-b; both continue with no gap and no duplicate, the final archive is " +
    "incremental and CRIU on node-b reads pages from the pre-copied parent",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const env = testEnv();
    const [nodeA, nodeB] = env.nodes!;
    const { kc, core, lpm, ns } = await openWorkspace(env, {
      ns: `e2e-pcm-${crypto.randomUUID().slice(0, 6)}`,
      storageClass: {
        name: CLASS,
        prefix: "e2e-pre-copy/",
        repository: "lpm/e2e-pre-copy",
        reuse: true,
      },
    });
    const http = kubeHttp(kc);
    const c = { http, ns };
    try {
      const toucher = await memoryToucherImage(env.registry!.host);
      const pod: k8s.V1Pod = {
        metadata: { name: "pc", labels: { app: "pc" } },
        spec: {
          nodeName: nodeA.name,
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: 0,
          containers: [
            { name: "counter", image: env.nodeImages!.busybox, command: COUNTER },
            { name: "toucher", image: toucher, command: memoryToucherCommand(TOUCHER_MIB, 1) },
          ],
        },
      };
      await core.createNamespacedPod({ namespace: ns, body: pod });
      const followers = ["counter", "toucher"].map((n) => new LogFollower(c, "pc", n));
      await counted(followers[0], 10);
      await counted(followers[1], 6);

      await createMigration(lpm, { namespace: ns, name: "move" }, {
        pod: "pc",
        target: nodeB.name,
        storageClassName: CLASS,
        extra: { preCopy: { rounds: 3 } },
      });
      const pm = await waitFor(async () => {
        const m = await lpm.get<PodMigration>("podmigrations", ns, "move");
        return m?.status?.phase === "Succeeded" || m?.status?.phase === "Failed" ? m : undefined;
      }, { what: 'PodMigration "move" to finish', timeoutMs: 180_000, intervalMs: 250 });
      assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
      const st = pm.status!;
      console.error(`[e2e_pre_copy] status.preCopy ${JSON.stringify(st.preCopy)}`);
      console.error(`[e2e_pre_copy] timings ${JSON.stringify(st.timings)}`);

      // PreCopying came before the freeze, and said what it did.
      const phases = (st.phaseTransitionTimestamps ?? []).map((p) => p.phase);
      assert(
        phases.indexOf("PreCopying") >= 0 &&
          phases.indexOf("PreCopying") < phases.indexOf("Checkpointing"),
        `phases ${phases.join(" -> ")}`,
      );
      assertGreater(st.timings?.preCopyMs ?? 0, 0);
      const entries = st.preCopy?.containers ?? [];
      assertEquals(entries.map((e) => e.name).sort(), ["counter", "toucher"]);
      for (const e of entries) {
        assertMatch(e.image ?? "", /@sha256:[a-f0-9]{64}$/, `${e.name}: parent image`);
        assert((e.rounds?.length ?? 0) >= 1, `${e.name}: no rounds`);
      }
      const touch = entries.find((e) => e.name === "toucher")!;
      // Round 1 is a full dump: at least the toucher's memory.
      assertGreater(touch.rounds![0].pages, (TOUCHER_MIB * 256) - 1);

      // Both containers continue with no gap and no duplicate.
      const restored = st.restoredPodName!;
      for (const [i, name] of ["counter", "toucher"].entries()) {
        const source = await sourceEnded(followers[i], name);
        let lines: LogLine[] = [];
        await waitFor(async () => {
          lines = await readLog(c, restored, name);
          return lines.length >= source.length + (name === "counter" ? 10 : 3);
        }, { what: `the restored "${name}" to go on`, timeoutMs: 30_000 });
        const cont = assertContinues(source, lines, `pre-copy, ${name}`);
        console.error(`[e2e_pre_copy] ${name}: source ended at ${cont.n}, restored went on`);
      }

      // The toucher's final checkpoint: incremental, two layers, the first the parent's.
      const pc = await lpm.get<PodCheckpoint>("podcheckpoints", ns, st.podCheckpointRef!.name);
      assertEquals(pc?.spec.preCopyOperations?.toucher, touch.operationId);
      const ccName = pc!.status!.containers!.find((x) => x.name === "toucher")!
        .containerCheckpointName;
      const cc = await lpm.get<ContainerCheckpoint>("containercheckpoints", ns, ccName);
      assertEquals(cc?.spec.preCopyOperationId, touch.operationId);
      const size = cc!.status!.archive!.size;
      console.error(`[e2e_pre_copy] toucher's final archive: ${size} bytes`);
      assertLess(size, TOUCHER_MIB * 1024 * 1024 / 2, "the final archive is not incremental");
      // A layer per round (each pulled on node-b before the next round or the freeze), then
      // the incremental archive's.
      const parentLayers = await layersOf(touch.image!);
      const finalLayers = await layersOf(cc!.status!.image!.reference);
      assertEquals(parentLayers.length, touch.rounds!.length);
      assertEquals(finalLayers.length, parentLayers.length + 1);
      assertEquals(finalLayers.slice(0, -1), parentLayers, "the rounds' layers come first");
      for (const [i, r] of touch.rounds!.entries()) {
        assertEquals(r.round, i + 1);
        if (i > 0) assertLess(r.dirtyPages, r.pages, `round ${r.round} sent every page again`);
      }

      // CRIU on node-b read the unchanged pages from checkpoint/parent/.
      const rp = await core.readNamespacedPod({ name: restored, namespace: ns });
      assertEquals(rp.spec?.nodeName, nodeB.name);
      const id = rp.status!.containerStatuses!.find((s) => s.name === "toucher")!.containerID!
        .replace(/^containerd:\/\//, "");
      const restoreLog = await Deno.readTextFile(
        `${nodeB.containerdRoot}/io.containerd.runtime.v2.task/k8s.io/${id}/restore.log`,
      );
      assertMatch(restoreLog, /Read from parent/, "CRIU did not read pages from the parent");
    } finally {
      await core.deleteNamespace({ name: ns }).catch(() => {});
      http.close();
    }
  },
});
