import { assertEquals, assertRejects, assertThrows } from "@std/assert";
import {
  buildCheckpointImage,
  credentialsFor,
  digestFile,
  extractCheckpointArchive,
  LPM,
  OciLayout,
  parseReference,
  readLayoutTarball,
  writeLayoutTarball,
} from "./mod.ts";

Deno.test("reference: host, port, nested repo, tag, digest; bad ones rejected", () => {
  const d = `sha256:${"a".repeat(64)}`;
  assertEquals(parseReference("127.0.0.1:5000/lpm/ckpt/app:v1"), {
    host: "127.0.0.1:5000",
    repository: "lpm/ckpt/app",
    tag: "v1",
    digest: undefined,
  });
  assertEquals(parseReference(`reg.io/app@${d}`).digest, d);
  assertThrows(() => parseReference("app:v1"), Error, "no registry host");
  assertThrows(() => parseReference("reg.io/App:v1"), Error, "bad repository");
  assertThrows(() => parseReference("reg.io/app@sha256:zz"), Error, "bad digest");
});

Deno.test("auth: Docker config auth and username/password forms", () => {
  const cfg = {
    auths: {
      "https://reg.io/v1/": { auth: btoa("u:p:with:colons") },
      "other:5000": { username: "x", password: "y" },
    },
  };
  assertEquals(credentialsFor(cfg, "reg.io"), { username: "u", password: "p:with:colons" });
  assertEquals(credentialsFor(JSON.stringify(cfg), "other:5000")?.password, "y");
  assertEquals(credentialsFor(cfg, "none"), undefined);
  assertThrows(() => credentialsFor("{", "x"), Error, "Invalid Docker config JSON");
});

async function archive(dir: string): Promise<string> {
  const s = `${dir}/s`;
  await Deno.mkdir(`${s}/checkpoint`, { recursive: true });
  await Deno.writeTextFile(
    `${s}/config.dump`,
    JSON.stringify({
      id: "i",
      name: "web",
      createdTime: "2026-01-01T00:00:00Z",
      rootfsImageName: "reg.io/web:1",
    }),
  );
  await Deno.writeTextFile(`${s}/spec.dump`, "{}");
  await Deno.writeFile(`${s}/checkpoint/inventory.img`, new Uint8Array(10));
  await Deno.writeFile(`${s}/checkpoint/pages-1.img`, new Uint8Array(300_000).fill(3));
  const out = `${dir}/a.tar`;
  const p = await new Deno.Command("tar", {
    args: ["-C", s, "-cf", out, "config.dump", "spec.dump", "checkpoint"],
  }).output();
  assertEquals(p.success, true);
  return out;
}

Deno.test("layout: build (builtin gzip), tarball round trip, byte-identical extract; corrupt layer refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const a = await archive(dir);
    const img = await buildCheckpointImage(a, {
      layoutDir: `${dir}/l`,
      builtinGzip: true,
      refName: "cp1",
    });
    assertEquals(img.image.annotations?.["io.kubernetes.cri-o.annotations.checkpoint.name"], "web");
    assertEquals(img.image.annotations?.[LPM.compression], "gzip");
    assertEquals(img.archiveDigest, (await digestFile(a)).digest);
    await writeLayoutTarball(img.layoutDir, `${dir}/oci.tar`);
    const copy = await readLayoutTarball(`${dir}/oci.tar`, `${dir}/l2`);
    await extractCheckpointArchive(copy.dir, `${dir}/back.tar`, { ref: "cp1" });
    assertEquals(await Deno.readFile(`${dir}/back.tar`), await Deno.readFile(a));
    const layer = img.image.layers[0];
    const path = (await OciLayout.open(copy.dir)).blobPath(layer.digest);
    const bytes = await Deno.readFile(path);
    bytes[20] ^= 1;
    await Deno.writeFile(path, bytes);
    await assertRejects(() => extractCheckpointArchive(copy.dir, `${dir}/bad.tar`), Error);
    await assertRejects(() => Deno.stat(`${dir}/bad.tar`), Deno.errors.NotFound);
    await assertRejects(
      () => extractCheckpointArchive(copy.dir, `${dir}/x.tar`, { ref: "nope" }),
      Error,
      `no manifest "nope"`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
