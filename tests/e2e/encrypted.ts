/**
 * A migration through an encrypting CheckpointStorageClass with lpm
 * installed in the cluster: the target's agent decrypts the checkpoint image
 * and imports it into its node's containerd with `ctr` from the agent image
 * (images/build.ts). A shell holds a random marker made inside the container
 * (in no spec, only in memory) and echoes it with a count; the restored pod
 * echoes the same marker and goes on counting from where the source stopped.
 * Each agent's log says it encrypts with OpenSSL's libcrypto, which the agent
 * image carries (storage/aes_gcm.ts; WebCrypto would work, its AES-GCM 5-8x slower).
 * The scans of MinIO and the registry for the marker are in
 * tests/encryption_test.ts (host-process lpm): the bytes the in-cluster agent
 * writes are the same code's.
 *
 * A step of tests/e2e_migration_test.ts.
 * @module
 */
import { assertEquals } from "@std/assert";
import "../../kube/http1.ts";
import {
  createMigration,
  deleteNamespaceAndWait,
  kubeClients,
  openWorkspace,
} from "../../testing/e2e.ts";
import { type EnvironmentInfo, waitFor } from "../../localenv/mod.ts";
import type { CheckpointStorageClass, PodMigration } from "../../api/mod.ts";

/** The step's name in tests/e2e_migration_test.ts. */
export const ENCRYPTED_MOVES =
  "e2e: a pod migrates through an encrypting class; the in-cluster target agent decrypts and imports it";

const SHELL = 'M="LPMMARK$(head -c 12 /dev/urandom | od -An -tx1 | tr -dc 0-9a-f)"; ' +
  'i=0; while true; do i=$((i+1)); echo "$M $i"; sleep 0.3; done';

/** Runs the encrypted migration on `env` (2 nodes, lpm installed, MinIO, the registry). */
export async function encryptedMoves(env: EnvironmentInfo): Promise<void> {
  const id = crypto.randomUUID().slice(0, 6);
  const cls = `e2e-enc-${id}`;
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
  // The class validates its keys: the Secret comes first.
  await kubeClients(env.kube!.kubeconfig).core.createNamespacedSecret({
    namespace: "lpm-system",
    body: { metadata: { name: `${cls}-keys` }, stringData: { k1: key } },
  });
  const { core, lpm, ns } = await openWorkspace(env, {
    ns: cls,
    storageClass: {
      name: cls,
      prefix: `${cls}/`,
      repository: `lpm/${cls}`,
      spec: {
        encryption: {
          secretRef: { name: `${cls}-keys`, namespace: "lpm-system" },
          keys: [{ id: "k1" }],
        },
      },
    },
  });
  const lines = async (pod: string) =>
    String(await core.readNamespacedPodLog({ name: pod, namespace: ns }))
      .split("\n").map((l) => l.trim().match(/^(LPMMARK[0-9a-f]{24}) (\d+)$/))
      .filter((m) => m !== null).map((m) => ({ marker: m![1], n: Number(m![2]) }));
  try {
    const c = await lpm.get<CheckpointStorageClass>("checkpointstorageclasses", "", cls);
    assertEquals(c?.status?.encryption, 'On (key "k1")');
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: "holder" },
        spec: {
          nodeName: env.nodes![0].name,
          containers: [{
            name: "app",
            image: env.nodeImages!.busybox,
            command: ["sh", "-c", SHELL],
          }],
        },
      },
    });
    const marker = await waitFor(async () => {
      const l = await lines("holder").catch(() => []);
      return l.length >= 3 ? l[0].marker : undefined;
    }, { what: "the holder to echo its marker", timeoutMs: 60_000 });
    const seen = (await lines("holder")).at(-1)!.n;
    await createMigration(lpm, { namespace: ns, name: "move" }, {
      pod: "holder",
      target: env.nodes![1].name,
      storageClassName: cls,
    });
    const pm = await waitFor(async () => {
      const m = await lpm.get<PodMigration>("podmigrations", ns, "move");
      return m?.status?.phase === "Succeeded" || m?.status?.phase === "Failed" ? m : undefined;
    }, { what: "the encrypted migration to finish", timeoutMs: 150_000, intervalMs: 250 });
    assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
    const restored = pm.status!.restoredPodName!;
    const after = await waitFor(async () => {
      const l = await lines(restored).catch(() => []);
      return (l.at(-1)?.n ?? 0) > seen + 3 ? l : undefined;
    }, { what: "the restored pod to echo past its replayed log", timeoutMs: 60_000 });
    assertEquals(new Set(after.map((l) => l.marker)), new Set([marker]), "the same marker");
    // The source's log replayed, then its count going on: 1, 2, ... with no gap or restart.
    assertEquals(after.map((l) => l.n), after.map((_, i) => i + 1), "one count, never restarted");
    // The agent image carries OpenSSL's libcrypto (images/build.ts) and its agents use it.
    const agents = await core.listNamespacedPod({
      namespace: "lpm-system",
      labelSelector: "app.kubernetes.io/name=lpm-agent",
    });
    assertEquals(agents.items.length, env.nodes!.length, "one agent pod per node");
    for (const a of agents.items) {
      const log = String(
        await core.readNamespacedPodLog({ name: a.metadata!.name!, namespace: "lpm-system" }),
      );
      const engine = log.match(/"msg":"checkpoint encryption engine".*?"aesGcm":"(\w+)"/)?.[1];
      assertEquals(engine, "openssl", `${a.metadata!.name}'s AES-GCM engine`);
    }
    console.log(`encrypted in-cluster migration: downtime ${pm.status?.timings?.downtimeMs} ms`);
  } finally {
    await deleteNamespaceAndWait(core, ns);
    await lpm.delete("checkpointstorageclasses", "", cls).catch(() => {});
    await core.deleteNamespacedSecret({ name: `${cls}-keys`, namespace: "lpm-system" })
      .catch(() => {});
  }
}
