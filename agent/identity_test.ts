/**
 * Agent identity both ways, over real mutual TLS: an agent that pins the
 * controller's certificate by fingerprint refuses another certificate with
 * the same common name from the same CA, and a controller that expects each
 * agent to name its node refuses an agent whose certificate names another.
 */
import { assertEquals, assertRejects } from "@std/assert";
import { Pki } from "../localenv/pki.ts";
import { FakeDriver, startTestServer, type TestCerts } from "../testing/agent.ts";
import { AgentClient, GrpcAgentConnector } from "../contract/client.ts";
import { createLocalStore } from "../storage/mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function certs(dir: string) {
  const pki = await Pki.create(`${dir}/ca`, "lpm-test-ca");
  const ca = pki.ca.cert;
  const agentA = await pki.issue("agent-a", {
    cn: "lpm-agent",
    sans: ["lpm-agent.node-a", "127.0.0.1"],
    usage: ["server"],
  });
  const ctl = await pki.issue("controller", { cn: "lpm-controller", usage: ["client"] });
  // Same CA, same CN: what anyone allowed to use a CSR API signer for that CA could get.
  const twin = await pki.issue("twin", { cn: "lpm-controller", usage: ["client"] });
  return {
    agentA: { cert: agentA.cert, key: agentA.key, ca },
    controller: { cert: ctl.cert, key: ctl.key, ca },
    twin: { cert: twin.cert, key: twin.key, ca },
  };
}

Deno.test({
  name: "agent identity: a pinned controller certificate, and agents that must name their node",
  ...opts,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "lpm-identity-" });
    const c = await certs(dir);
    const pin = `sha256:${await Pki.fingerprint(c.controller.cert)}`;
    const { server, stateDir, address } = await startTestServer(
      { dir, server: c.agentA } as unknown as TestCerts,
      {
        driver: new FakeDriver(),
        resolveClass: () => Promise.resolve({ name: "x", store: createLocalStore({ path: dir }) }),
        security: { mode: "mtls", files: c.agentA, allowedClients: [pin], watch: false },
      },
    );
    const connect = (files: typeof c.controller, serverName: string) =>
      AgentClient.connect(address, {
        security: { mode: "mtls", files, serverName },
        timeoutMs: 5000,
      });
    try {
      // The pinned certificate is accepted; its twin (same CA, same CN) is not.
      const ok = await connect(c.controller, "lpm-agent.node-a");
      assertEquals((await ok.health()).nodeName, "test-node");
      ok.close();
      const twin = await connect(c.twin, "lpm-agent.node-a");
      await assertRejects(() => twin.health(), Error, "not allowed");
      twin.close();

      // Through the connector, with per-node names: node-a's agent answers as node-a...
      const connector = new GrpcAgentConnector({
        security: { mode: "mtls", files: c.controller, serverName: "lpm-agent.{node}" },
        overrides: { "node-a": address, "node-b": address },
        timeoutMs: 5000,
      });
      try {
        const health = await (await connector.forNode("node-a")).health!();
        assertEquals(health.runtime, "fake");
        // ...but the same agent reached as node-b's is refused: its certificate names node-a.
        const b = await connector.forNode("node-b");
        await assertRejects(() => b.health!(), Error, "lpm-agent.node-b");
      } finally {
        connector.close?.();
      }
    } finally {
      await server.close();
      for (const d of [dir, stateDir]) await Deno.remove(d, { recursive: true });
    }
  },
});
