import { assertEquals } from "@std/assert";
import { agentServerName, describeIdentity, identityOf, isAllowed } from "./tls.ts";

Deno.test("tls: identity from a peer certificate; allow-list by CN or URI SAN", () => {
  const id = identityOf({
    subject: { CN: "lpm-controller" },
    subjectaltname: "URI:spiffe://lpm/controller, DNS:controller.lpm-system.svc",
  });
  assertEquals(id, {
    commonName: "lpm-controller",
    uris: ["spiffe://lpm/controller"],
    dnsNames: ["controller.lpm-system.svc"],
  });
  assertEquals(isAllowed(id, ["lpm-controller"]), true);
  assertEquals(isAllowed(id, ["spiffe://lpm/controller"]), true);
  assertEquals(isAllowed(id, ["spiffe://lpm/other", "other"]), false);
  // A CN that looks like a URI does not pass a URI entry.
  assertEquals(
    isAllowed(identityOf({ subject: { CN: "spiffe://lpm/controller" } }), [
      "spiffe://lpm/controller",
    ]),
    false,
  );
  assertEquals(isAllowed(undefined, ["lpm-controller"]), false);
  assertEquals(identityOf({} as never), undefined);
  assertEquals(describeIdentity(undefined), "no client certificate");
});

Deno.test("isAllowed pins a certificate by its SHA-256 fingerprint", () => {
  const fp = "AB:CD:EF:01";
  const id = identityOf({ subject: { CN: "lpm-controller" }, fingerprint256: fp });
  assertEquals(id?.sha256, "abcdef01");
  assertEquals(isAllowed(id, ["sha256:abcdef01"]), true);
  assertEquals(isAllowed(id, ["sha256:AB:CD:EF:01"]), true);
  // The same CN from another certificate is not the pinned identity.
  const other = identityOf({ subject: { CN: "lpm-controller" }, fingerprint256: "00:11" });
  assertEquals(isAllowed(other, ["sha256:abcdef01"]), false);
  assertEquals(isAllowed(identityOf({ subject: { CN: "x" } }), ["sha256:"]), false);
});

Deno.test("agentServerName fills the node into the template", () => {
  assertEquals(agentServerName("lpm-agent.{node}", "node-a"), "lpm-agent.node-a");
  assertEquals(agentServerName("lpm-agent", "node-a"), "lpm-agent");
});
