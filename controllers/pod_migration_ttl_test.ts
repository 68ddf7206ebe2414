import { assertEquals } from "@std/assert";
import { expireFinished } from "./pod_migration_ttl.ts";
import type { PodMigration, PodMigrationStatus } from "../api/mod.ts";
import type { LpmClient } from "../kube/lpm_client.ts";
import { Logger } from "../base/log.ts";

const T = Date.parse("2026-11-30T12:00:00Z");
const log = new Logger({}, "error");

function fake() {
  const deleted: unknown[][] = [];
  const lpm = {
    delete: (...args: unknown[]) => {
      deleted.push(args);
      return Promise.resolve();
    },
  } as unknown as LpmClient;
  return { deps: { lpm }, deleted };
}

function pm(ttl?: number, extra: Partial<PodMigration["metadata"]> = {}): PodMigration {
  return {
    apiVersion: "lpm.my.domain/v1",
    kind: "PodMigration",
    metadata: {
      name: "m",
      namespace: "ns",
      uid: "u1",
      creationTimestamp: new Date(T - 60_000),
      ...extra,
    },
    spec: { podName: "p", ...(ttl === undefined ? {} : { ttlSecondsAfterFinished: ttl }) },
  } as PodMigration;
}

const done = (at?: number): PodMigrationStatus => ({
  phase: "Succeeded",
  ...(at === undefined ? {} : { completionTime: new Date(at).toISOString() }),
});

Deno.test("ttl: without spec.ttlSecondsAfterFinished a finished migration stays", async () => {
  const { deps, deleted } = fake();
  assertEquals(await expireFinished(deps, pm(), done(T - 10 ** 9), log, T), undefined);
  assertEquals(deleted, []);
});

Deno.test("ttl: before its time it waits for exactly the rest; then deletes this uid", async () => {
  const { deps, deleted } = fake();
  assertEquals(await expireFinished(deps, pm(30), done(T - 10_000), log, T), {
    requeueAfterMs: 20_000,
  });
  assertEquals(deleted, []);
  assertEquals(await expireFinished(deps, pm(30), done(T - 30_000), log, T), undefined);
  assertEquals(deleted, [["podmigrations", "ns", "m", { uid: "u1" }]]);
});

Deno.test("ttl: 0 deletes at once; without completionTime the last phase change counts, else creation", async () => {
  const { deps, deleted } = fake();
  await expireFinished(deps, pm(0), done(T), log, T);
  assertEquals(deleted.length, 1);
  const noTime: PodMigrationStatus = {
    phase: "Failed",
    phaseTransitionTimestamps: [
      { phase: "Pending", phaseTransitionTimestamp: new Date(T - 50_000).toISOString() },
      { phase: "Failed", phaseTransitionTimestamp: new Date(T - 5_000).toISOString() },
    ],
  };
  assertEquals(await expireFinished(deps, pm(10), noTime, log, T), { requeueAfterMs: 5_000 });
  // Created 60 s ago, nothing else known: a TTL of 100 s has 40 s left.
  assertEquals(await expireFinished(deps, pm(100), { phase: "Failed" }, log, T), {
    requeueAfterMs: 40_000,
  });
});

Deno.test("ttl: a migration being deleted is left to its deletion", async () => {
  const { deps, deleted } = fake();
  const gone = pm(0, { deletionTimestamp: new Date(T) });
  assertEquals(await expireFinished(deps, gone, done(T - 1000), log, T), undefined);
  assertEquals(deleted, []);
});
