import { assertEquals } from "@std/assert";
import { type Condition, isTerminal, phaseTime, setCondition, setPhase } from "./_status.ts";

Deno.test("setCondition bumps lastTransitionTime only when the status changes", () => {
  const t1 = new Date("2026-01-01T00:00:00Z");
  const t2 = new Date("2026-01-01T00:01:00Z");
  const cs: Condition[] = [];
  setCondition(cs, { type: "Ready", status: "False", reason: "Waiting", message: "a" }, t1);
  setCondition(cs, { type: "Ready", status: "False", reason: "StillWaiting", message: "b" }, t2);
  assertEquals(cs.length, 1);
  assertEquals(cs[0].lastTransitionTime, t1.toISOString());
  assertEquals(cs[0].reason, "StillWaiting");
  setCondition(cs, { type: "Ready", status: "True", reason: "Done", message: "" }, t2);
  assertEquals(cs[0].lastTransitionTime, t2.toISOString());
});

Deno.test("setPhase records each transition once, with its time", () => {
  const s: {
    phase?: string;
    phaseTransitionTimestamps?: { phase: string; phaseTransitionTimestamp: string }[];
  } = {};
  const t = new Date("2026-01-01T00:00:00Z");
  assertEquals(setPhase(s, "Pending", t), true);
  assertEquals(setPhase(s, "Pending", t), false);
  setPhase(s, "Checkpointing", new Date("2026-01-01T00:00:05Z"));
  assertEquals(s.phaseTransitionTimestamps?.length, 2);
  assertEquals(phaseTime(s, "Checkpointing")?.toISOString(), "2026-01-01T00:00:05.000Z");
  assertEquals(isTerminal("Failed"), true);
  assertEquals(isTerminal("Restoring"), false);
});
