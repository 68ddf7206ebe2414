import { assertEquals, assertStrictEquals } from "@std/assert";
import {
  appendPhaseTransition,
  findCondition,
  isConditionTrue,
  MAX_CONDITION_MESSAGE,
  setCondition,
} from "./conditions.ts";

const t1 = new Date("2026-01-01T00:00:00Z");
const t2 = new Date("2026-01-01T00:01:00Z");
const t3 = new Date("2026-01-01T00:02:00Z");

Deno.test("api: setCondition adds, keeps the transition time on same status, bumps it on change", () => {
  const a = setCondition(undefined, {
    type: "Ready",
    status: "False",
    reason: "Waiting",
    message: "a",
  }, t1);
  assertEquals(a, [{
    type: "Ready",
    status: "False",
    reason: "Waiting",
    message: "a",
    lastTransitionTime: t1.toISOString(),
  }]);
  const b = setCondition(a, {
    type: "Ready",
    status: "False",
    reason: "StillWaiting",
    message: "b",
    observedGeneration: 2,
  }, t2);
  assertEquals(b[0].lastTransitionTime, t1.toISOString());
  assertEquals([b[0].reason, b[0].message, b[0].observedGeneration], ["StillWaiting", "b", 2]);
  assertEquals(a[0].reason, "Waiting", "the input array is not modified");
  const c = setCondition(b, { type: "Ready", status: "True", reason: "Done", message: "" }, t3);
  assertEquals(c[0].lastTransitionTime, t3.toISOString());
  assertEquals(c.length, 1);
  assertEquals(isConditionTrue(c, "Ready"), true);
  assertEquals(isConditionTrue(c, "Stored"), false);
});

Deno.test("api: setCondition keeps other types in order and caps the message", () => {
  let list = setCondition([], { type: "A", status: "True", reason: "R", message: "" }, t1);
  list = setCondition(list, {
    type: "B",
    status: "Unknown",
    reason: "R",
    message: "x".repeat(MAX_CONDITION_MESSAGE + 10),
  }, t2);
  list = setCondition(list, { type: "A", status: "False", reason: "R", message: "" }, t3);
  assertEquals(list.map((c) => c.type), ["A", "B"]);
  assertEquals(findCondition(list, "B")!.message.length, MAX_CONDITION_MESSAGE);
  assertEquals(findCondition(list, "A")!.lastTransitionTime, t3.toISOString());
  assertStrictEquals(findCondition(list, "C"), undefined);
});

Deno.test("api: appendPhaseTransition records a phase once", () => {
  let h = appendPhaseTransition(undefined, "Pending", t1);
  h = appendPhaseTransition(h, "Pending", t2);
  h = appendPhaseTransition(h, "Checkpointing", t3);
  assertEquals(h, [
    { phase: "Pending", phaseTransitionTimestamp: t1.toISOString() },
    { phase: "Checkpointing", phaseTransitionTimestamp: t3.toISOString() },
  ]);
});
