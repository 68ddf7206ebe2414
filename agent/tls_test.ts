import { assertEquals } from "@std/assert";
import { describeIdentity, identityOf, isAllowed } from "./tls.ts";

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
