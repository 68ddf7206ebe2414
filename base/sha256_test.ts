import { assertEquals } from "@std/assert";
import { isSha256Hex, Sha256Counter, sha256Hex } from "./sha256.ts";

const ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

Deno.test("sha256Hex: the FIPS 180-2 'abc' vector, from text and from bytes", () => {
  assertEquals(sha256Hex("abc"), ABC);
  assertEquals(sha256Hex(new TextEncoder().encode("abc")), ABC);
  assert64(sha256Hex(new Uint8Array()));
});

Deno.test("Sha256Counter: chunks hash as the whole and are counted", () => {
  const h = new Sha256Counter().update(new TextEncoder().encode("a"));
  h.update(new TextEncoder().encode("bc"));
  assertEquals(h.size, 3);
  assertEquals(h.hex(), ABC);
});

Deno.test("isSha256Hex: 64 lowercase hex digits only", () => {
  assertEquals(isSha256Hex(ABC), true);
  assertEquals(isSha256Hex(ABC.toUpperCase()), false);
  assertEquals(isSha256Hex(`sha256:${ABC}`), false);
});

function assert64(hex: string): void {
  assertEquals(isSha256Hex(hex), true);
}
