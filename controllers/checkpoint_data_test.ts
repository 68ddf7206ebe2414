import { assertEquals, assertRejects } from "@std/assert";
import type { RegistryClient } from "../oci/mod.ts";
import { type ClassData, deleteImages, removeCheckpoint } from "./checkpoint_data.ts";

const D = (c: string) => `sha256:${c.repeat(64)}`;

function fakeClass(have: Set<string>): { data: ClassData; calls: string[] } {
  const calls: string[] = [];
  const client = {
    deleteManifest(repo: string, digest: string) {
      calls.push(`${repo}@${digest}`);
      return Promise.resolve(have.delete(digest));
    },
  } as unknown as RegistryClient;
  return {
    calls,
    data: {
      registry: { client, host: "reg.example:5000", repository: "lpm/ckpt" },
      close() {},
    },
  };
}

Deno.test("deleteImages deletes by digest inside the class's repository only", async () => {
  const { data, calls } = fakeClass(new Set([D("a")]));
  const r = await deleteImages(data, [
    `reg.example:5000/lpm/ckpt@${D("a")}`,
    `reg.example:5000/lpm/ckpt@${D("b")}`, // already gone
    `reg.example:5000/lpm/ckpt@${D("a")}`, // twice: asked once
    `reg.example:5000/lpm/other@${D("c")}`, // another repository
    `evil.example/lpm/ckpt@${D("d")}`, // another host
    "reg.example:5000/lpm/ckpt:tag", // not by digest
    "not a reference",
  ]);
  assertEquals(r.deleted, [`reg.example:5000/lpm/ckpt@${D("a")}`]);
  assertEquals(r.missing, [`reg.example:5000/lpm/ckpt@${D("b")}`]);
  assertEquals(r.refused.length, 4);
  assertEquals(calls, [`lpm/ckpt@${D("a")}`, `lpm/ckpt@${D("b")}`]);
});

Deno.test("removeCheckpoint refuses anything but a <ns>/<pod>/<id>/ prefix", async () => {
  const { data } = fakeClass(new Set());
  for (const p of ["", "ns/", "ns/pod/", "ns/pod/id", "ns/pod/id/x/"]) {
    await assertRejects(() => removeCheckpoint(data, p), Error, "not a <ns>/<pod>/<id>/ prefix");
  }
  // Without a store (a node provider) only the images go.
  const { data: d2, calls } = fakeClass(new Set([D("e")]));
  const r = await removeCheckpoint(d2, "ns/pod/id/", {
    knownImages: [`reg.example:5000/lpm/ckpt@${D("e")}`],
  });
  assertEquals(r.objects, 0);
  assertEquals(calls.length, 1);
});
