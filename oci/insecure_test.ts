import { assertEquals, assertStringIncludes, assertThrows } from "@std/assert";
import { insecureRegistryRefusal, loopbackHost } from "./insecure.ts";
import { RegistryClient } from "./registry_client.ts";

Deno.test("loopbackHost: only loopback addresses", () => {
  for (const h of ["127.0.0.1:5000", "127.1.2.3", "localhost:5000", "[::1]:5000", "::1"]) {
    assertEquals(loopbackHost(h), true, h);
  }
  for (const h of ["10.0.0.1:5000", "registry.example.com", "127.0.0.1.evil.com:5000", "[::2]:1"]) {
    assertEquals(loopbackHost(h), false, h);
  }
});

Deno.test("insecureRegistryRefusal: plain HTTP is refused off loopback", () => {
  assertEquals(insecureRegistryRefusal("127.0.0.1:5000/lpm", true), undefined);
  assertEquals(insecureRegistryRefusal("reg.example.com/lpm", false), undefined);
  assertStringIncludes(
    insecureRegistryRefusal("reg.example.com:5000/lpm", true)!,
    'Registry "reg.example.com:5000" is marked insecure',
  );
});

Deno.test("RegistryClient: plain HTTP only on loopback", () => {
  new RegistryClient("127.0.0.1:5000", { insecure: true }).close();
  new RegistryClient("reg.example.com:5000").close();
  assertThrows(
    () => new RegistryClient("reg.example.com:5000", { insecure: true }),
    Error,
    "not on a loopback address",
  );
});
