import { assertEquals, assertRejects, assertThrows } from "@std/assert";
import { prepareImage } from "./prepare.ts";
import { imageTag, keySegment } from "./pipeline.ts";
import { parseAgentArgs } from "./main.ts";

Deno.test("image references, tags and key segments", async () => {
  await assertRejects(
    () => prepareImage({ operationId: "o", image: "busybox" }),
    Error,
    "no registry host",
  );
  await assertRejects(
    () => prepareImage({ operationId: "o", image: "reg.example.com/a/b:t1", insecure: true }),
    Error,
    "not on a loopback address",
  );
  assertEquals(
    imageTag({ pod: "web", container: "app", operationId: "0b3f-uid" }),
    "web-app-0b3f-uid",
  );
  assertEquals(imageTag({ pod: "p", container: "c", operationId: "x".repeat(200) }).length, 128);
  assertEquals(keySegment("a/b c"), "a-b-c");
});

Deno.test("agent flags: mTLS is mandatory unless --insecure-dev", () => {
  assertThrows(() => parseAgentArgs(["--node-name", "n"]), Error, "Mutual TLS is mandatory");
  assertThrows(
    () =>
      parseAgentArgs(["--node-name", "n", "--tls-cert", "c", "--tls-key", "k", "--client-ca", "a"]),
    Error,
    "--allowed-client",
  );
  const a = parseAgentArgs([
    "--node-name=n",
    "--tls-cert=c",
    "--tls-key=k",
    "--client-ca=a",
    "--allowed-client=lpm-controller,spiffe://lpm/controller",
  ]);
  assertEquals(a.allowedClients, ["lpm-controller", "spiffe://lpm/controller"]);
  assertEquals(parseAgentArgs(["--node-name", "n", "--insecure-dev"]).insecureDev, true);
  assertThrows(() => parseAgentArgs(["--node-name", "n", "--insecure-dev", "--runtime", "x"]));
});
