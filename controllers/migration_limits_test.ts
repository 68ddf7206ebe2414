import { assertEquals, assertStringIncludes } from "@std/assert";
import { freesSlot, MigrationSlots, toWake } from "./migration_limits.ts";

const none = { running: [], pending: new Set<string>() };

Deno.test("limits: one outbound per node; another node still has room", () => {
  const slots = new MigrationSlots({ maxParallel: 5, maxOutboundPerNode: 1 });
  const pending = new Set(["ns/a", "ns/b", "ns/c"]);
  assertEquals(slots.admit({ key: "ns/a", node: "node-a" }, { running: [], pending }).ok, true);
  // a is held although the cache still shows it Pending.
  const b = slots.admit({ key: "ns/b", node: "node-a" }, { running: [], pending });
  assertEquals(b.ok, false);
  if (!b.ok) assertStringIncludes(b.reason, 'leave node "node-a" (--max-outbound-per-node 1)');
  assertEquals(slots.admit({ key: "ns/c", node: "node-b" }, { running: [], pending }).ok, true);
  // Admitting the same key again does not count itself.
  assertEquals(slots.admit({ key: "ns/a", node: "node-a" }, { running: [], pending }).ok, true);
});

Deno.test("limits: the cluster-wide cap counts running migrations; an end frees a slot", () => {
  const slots = new MigrationSlots({ maxParallel: 2, maxOutboundPerNode: 2 });
  const running = [{ key: "x/1", node: "n1" }, { key: "x/2", node: "n2" }];
  const r = slots.admit({ key: "x/3", node: "n3" }, { running, pending: new Set(["x/3"]) });
  assertEquals(r.ok, false);
  if (!r.ok) assertStringIncludes(r.reason, "--max-parallel-migrations 2");
  assertEquals(
    slots.admit({ key: "x/3", node: "n3" }, { running: running.slice(1), pending: new Set() }).ok,
    true,
  );
});

Deno.test("limits: a hold whose patch never landed expires after a minute", () => {
  let t = 0;
  const slots = new MigrationSlots({ maxParallel: 1, maxOutboundPerNode: 1 }, () => t);
  const pending = new Set(["a", "b"]);
  assertEquals(slots.admit({ key: "a", node: "n" }, { running: [], pending }).ok, true);
  assertEquals(slots.admit({ key: "b", node: "n" }, { running: [], pending }).ok, false);
  t = 61_000;
  assertEquals(slots.admit({ key: "b", node: "n" }, { running: [], pending }).ok, true);
  assertEquals(slots.admit({ key: "c", node: "m" }, none).ok, true);
});

Deno.test("limits: a slot frees when a migration leaves Checkpointing/Transferring/Restoring", () => {
  assertEquals(freesSlot("Restoring", "Succeeded"), true);
  assertEquals(freesSlot("Checkpointing", "Failed"), true);
  assertEquals(freesSlot("Transferring", undefined), true); // deleted
  assertEquals(freesSlot("Checkpointing", "Transferring"), false);
  assertEquals(freesSlot("Pending", "Checkpointing"), false);
  assertEquals(freesSlot(undefined, "Succeeded"), false);
});

Deno.test("limits: a freed slot wakes the oldest waiter of each source node, not every waiter", () => {
  const w = (key: string, node: string, created: string) => ({ key, node, created });
  assertEquals(
    toWake([
      w("ns/c", "n1", "2026-01-01T00:00:03Z"),
      w("ns/a", "n1", "2026-01-01T00:00:01Z"),
      w("ns/b", "n2", "2026-01-01T00:00:02Z"),
      w("ns/d", "n2", "2026-01-01T00:00:02Z"),
      w("ns/e", "n2", "2026-01-01T00:00:05Z"),
    ]),
    ["ns/a", "ns/b"],
  );
  assertEquals(toWake([]), []);
});
