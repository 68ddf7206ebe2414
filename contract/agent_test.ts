import { assertEquals } from "@std/assert";
import { type AgentConnector, agentHealthWithin, type NodeAgent } from "./agent.ts";

function connector(health?: NodeAgent["health"], unreachable = false): AgentConnector {
  return {
    forNode: (node) =>
      unreachable ? Promise.reject(new Error(`no agent on "${node}"`)) : Promise.resolve({
        checkpoint: () => Promise.reject(new Error("unused")),
        getOperation: () => Promise.reject(new Error("unused")),
        prepareRestore: () => Promise.reject(new Error("unused")),
        health,
      }),
  };
}

Deno.test("agentHealthWithin: the agent's answer, or undefined when it cannot tell in time", async () => {
  const h = { criuVersion: "4.2.1", kernelVersion: "6.18.0" };
  assertEquals(
    await agentHealthWithin(connector(() => Promise.resolve(h)), "n", { timeoutMs: 1000 }),
    h,
  );
  // An agent that hangs, fails, has no Health, or is not there: best effort, no answer.
  const t0 = Date.now();
  assertEquals(
    await agentHealthWithin(connector(() => new Promise(() => {})), "n", { timeoutMs: 50 }),
    undefined,
  );
  assertEquals(Date.now() - t0 < 1000, true);
  assertEquals(
    await agentHealthWithin(connector(() => Promise.reject(new Error("x"))), "n", {
      timeoutMs: 1000,
    }),
    undefined,
  );
  assertEquals(await agentHealthWithin(connector(undefined), "n", { timeoutMs: 1000 }), undefined);
  assertEquals(
    await agentHealthWithin(connector(undefined, true), "n", { timeoutMs: 1000 }),
    undefined,
  );
});
