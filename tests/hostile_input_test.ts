/**
 * Feeds the hostile-input corpus (tests/hostile/) to every reader of outside
 * data: the tar reader, archive validation, archive unpacking, the Docker
 * restore's root filesystem path, OCI layout tarballs, OCI extract, registry
 * pulls, and the PodRestore storage source. Each case asserts the refusal
 * (naming the member or field) and that a sentinel directory next to the
 * work directory did not change. Needs no environment: registries are
 * played by a local Deno.serve, stores are local directories.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import {
  CheckpointArchiveError,
  readArchive,
  tarEntries,
  tarFileEntries,
  unpackArchive,
} from "../archive/mod.ts";
import {
  applyRootfsChanges,
  rootfsDiffPolicy,
  type RootfsTarget,
} from "../agent/runtime/docker.ts";
import { extractTar } from "../archive/mod.ts";
import { ConfinementError } from "../confine/mod.ts";
import {
  digestBytes,
  extractCheckpointArchive,
  OciLayout,
  pullImage,
  readLayoutTarball,
  RegistryClient,
} from "../oci/mod.ts";
import { describeSource, RestoreFailure } from "../controllers/pod_restore_sources.ts";
import type { ReconcilerDeps } from "../controllers/deps.ts";
import type { CheckpointStorageClass, PodRestore } from "../api/mod.ts";
import { createLocalStore } from "../storage/mod.ts";
import {
  CONTAINER_NAME_CASES,
  DELETED_CASES,
  PATH_CASES,
  STRUCTURE_CASES,
  type StructureCase,
} from "./hostile/corpus.ts";
import { checkpointBase, gzip, gzipZeros, type RawMember, tar } from "./hostile/tar.ts";
import { type Sandbox, sandbox, snapshot } from "./hostile/sentinel.ts";

const enc = new TextEncoder();

/** Runs `fn` in a fresh sandbox; afterwards the sentinel must be unchanged. */
async function inSandbox(fn: (sb: Sandbox) => Promise<void>): Promise<void> {
  const sb = await sandbox();
  try {
    await fn(sb);
    await sb.assertSentinelUnchanged();
  } finally {
    await sb.remove();
  }
}

/** The bytes of a structure case after `base`, truncated when the case says so. */
function structureTar(base: RawMember[], c: StructureCase): Uint8Array<ArrayBuffer> {
  const full = tar([...base, ...c.members]);
  if (c.truncateTail === undefined) return full;
  const baseLen = tar(base).length - 1024;
  return full.slice(0, baseLen + c.truncateTail);
}

async function drain(entries: AsyncIterable<{ bytes(): Promise<Uint8Array>; size: number }>) {
  for await (const e of entries) if (e.size < 1 << 20) await e.bytes();
}

// ---------------------------------------------------------------- tar reader

for (const c of STRUCTURE_CASES) {
  Deno.test(`hostile tar reader (stream): ${c.name}`, async () => {
    const bytes = structureTar(checkpointBase(), c);
    const err = await assertRejects(() => drain(tarEntries(new Blob([bytes]).stream())));
    assertMatch((err as Error).message, c.expect);
  });
  Deno.test(`hostile tar reader (file): ${c.name}`, async () => {
    await inSandbox(async (sb) => {
      const path = `${sb.work}/x.tar`;
      await Deno.writeFile(path, structureTar(checkpointBase(), c));
      const err = await assertRejects(async () => drain(await tarFileEntries(path)));
      assertMatch((err as Error).message, c.expect);
    });
  });
}

Deno.test("hostile tar reader: many small chunks are read in linear time", async () => {
  // 8 MiB member delivered in 1-byte... too slow for any reader; 16-byte chunks: 512 Ki chunks.
  const bytes = tar([{ name: "big", data: new Uint8Array(8 << 20).fill(1) }]);
  let i = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(ctl) {
      if (i >= bytes.length) return ctl.close();
      ctl.enqueue(bytes.subarray(i, i + 16));
      i += 16;
    },
  });
  const t0 = performance.now();
  for await (const e of tarEntries(stream)) assertEquals((await e.bytes()).length, 8 << 20);
  // Quadratic copying (the old reader) takes minutes here; linear takes about a second.
  assert(performance.now() - t0 < 20_000, `took ${performance.now() - t0} ms`);
});

// ------------------------------------------------- archive validation + unpack

for (const c of STRUCTURE_CASES) {
  Deno.test(`hostile readArchive: ${c.name}`, async () => {
    await inSandbox(async (sb) => {
      const path = `${sb.work}/x.tar`;
      await Deno.writeFile(path, structureTar(checkpointBase(), c));
      const err = await assertRejects(() => readArchive(path), CheckpointArchiveError);
      assertMatch(err.message, c.expect);
    });
  });
  Deno.test(`hostile readArchive (gzip): ${c.name}`, async () => {
    await inSandbox(async (sb) => {
      const path = `${sb.work}/x.tar.gz`;
      await Deno.writeFile(path, await gzip(structureTar(checkpointBase(), c)));
      const err = await assertRejects(() => readArchive(path), CheckpointArchiveError);
      assertMatch(err.message, c.expect);
    });
  });
}

for (const c of PATH_CASES) {
  Deno.test(`hostile readArchive: ${c.name}`, async () => {
    await inSandbox(async (sb) => {
      const path = `${sb.work}/x.tar`;
      await Deno.writeFile(path, tar([...checkpointBase(), ...c.members(sb.sentinel)]));
      const err = await assertRejects(() => readArchive(path), CheckpointArchiveError);
      assertMatch(err.message, /^Refusing member ".*" of checkpoint archive ".*x\.tar": /);
      assertMatch(err.message, c.expect.archive);
    });
  });
  Deno.test(`hostile unpackArchive: ${c.name}`, async () => {
    await inSandbox(async (sb) => {
      const path = `${sb.work}/x.tar`;
      await Deno.writeFile(path, tar([...checkpointBase(), ...c.members(sb.sentinel)]));
      const err = await assertRejects(
        () => unpackArchive(path, `${sb.work}/out`),
        CheckpointArchiveError,
      );
      assertMatch(err.message, c.expect.archive);
    });
  });
}

Deno.test("hostile readArchive: deleted.files entries that leave the root", async () => {
  for (const c of DELETED_CASES) {
    await inSandbox(async (sb) => {
      const path = `${sb.work}/x.tar`;
      await Deno.writeFile(
        path,
        tar([...checkpointBase(), { name: "deleted.files", data: JSON.stringify(c.deleted) }]),
      );
      const err = await assertRejects(() => readArchive(path), CheckpointArchiveError);
      assertMatch(err.message, c.expect);
    });
  }
});

Deno.test("hostile readArchive: a 16 MiB+ config.dump is refused, not read into memory", async () => {
  await inSandbox(async (sb) => {
    const path = `${sb.work}/x.tar`;
    const big = new Uint8Array((16 << 20) + 1).fill(0x20);
    await Deno.writeFile(path, tar([{ name: "config.dump", data: big }, ...checkpointBase()]));
    const err = await assertRejects(() => readArchive(path), CheckpointArchiveError);
    assertMatch(err.message, /"config.dump" is 16777217 bytes, more than 16777216/);
  });
});

Deno.test("hostile readArchive: a gzip bomb is cut at the limit", async () => {
  await inSandbox(async (sb) => {
    const path = `${sb.work}/bomb.tar.gz`;
    // 64 MiB of zeros in one member: ~64 KiB compressed.
    const inner = new Uint8Array(512 + (64 << 20));
    inner.set(tar([{ name: "checkpoint/pages-1.img", data: "" }]).subarray(0, 512));
    const hdr = tar([{
      name: "checkpoint/pages-1.img",
      sizeField: (64 << 20).toString(8).padStart(11, "0") + "\0",
    }]);
    inner.set(hdr.subarray(0, 512));
    await Deno.writeFile(path, await gzip(inner));
    const err = await assertRejects(
      () => readArchive(path, { maxInflatedBytes: 8 << 20 }),
      CheckpointArchiveError,
    );
    assertMatch(
      err.message,
      /gzip-compressed checkpoint archive ".*": it decompresses to more than 8388608 bytes/,
    );
  });
});

Deno.test("hostile readArchive: the valid base is accepted (the corpus is not refused for its base)", async () => {
  await inSandbox(async (sb) => {
    const path = `${sb.work}/x.tar`;
    await Deno.writeFile(path, tar([...checkpointBase(), { name: "status.dump", data: "{}" }]));
    assertEquals((await readArchive(path)).config.name, "app");
    await unpackArchive(path, `${sb.work}/out`);
    assertEquals(await Deno.readTextFile(`${sb.work}/out/status.dump`), "{}");
  });
});

// ------------------------------------------------ Docker restore: rootfs path

/** A "container" that is a plain directory: the diff is extracted by the confined extractor. */
function dirTarget(root: string): RootfsTarget {
  return {
    name: `test root "${root}"`,
    putArchive: async (tarPath) => {
      await extractTar(tarPath, root, rootfsDiffPolicy(`diff for "${root}"`));
    },
    upperDir: () => Promise.resolve(root),
  };
}

for (const c of PATH_CASES) {
  Deno.test(`hostile Docker rootfs diff: ${c.name}`, async () => {
    await inSandbox(async (sb) => {
      const root = `${sb.work}/rootfs`;
      await Deno.mkdir(root);
      const diff = `${sb.work}/rootfs-diff.tar`;
      await Deno.writeFile(diff, tar(c.members(sb.sentinel)));
      const run = () => applyRootfsChanges(dirTarget(root), { diffTar: diff, deleted: [] });
      if (!c.expect.rootfs) {
        await run();
        return;
      }
      const err = await assertRejects(run, ConfinementError);
      assertMatch(err.message, c.expect.rootfs);
      // Every member is checked before the diff is applied: nothing was written.
      assertEquals(await snapshot(root), {});
    });
  });
}

for (const c of DELETED_CASES) {
  Deno.test(`hostile Docker rootfs deleted.files: ${c.name}`, async () => {
    await inSandbox(async (sb) => {
      const root = `${sb.work}/rootfs`;
      await Deno.mkdir(root);
      const err = await assertRejects(
        () => applyRootfsChanges(dirTarget(root), { deleted: c.deleted }),
        ConfinementError,
      );
      assertMatch(err.message, c.expect);
      assertEquals(await snapshot(root), {});
    });
  });
}

Deno.test("hostile Docker rootfs: a whiteout through a symlink the diff planted is refused", async () => {
  await inSandbox(async (sb) => {
    const root = `${sb.work}/rootfs`;
    await Deno.mkdir(root);
    const diff = `${sb.work}/rootfs-diff.tar`;
    // lnk -> <sentinel> is inside the container (absolute = container root), but on the host
    // it is the sentinel: the old code removed and mknod'ed <sentinel>/victim here.
    await Deno.writeFile(diff, tar([{ name: "lnk", type: "2", linkname: sb.sentinel }]));
    const err = await assertRejects(
      () => applyRootfsChanges(dirTarget(root), { diffTar: diff, deleted: ["/lnk/victim"] }),
      ConfinementError,
    );
    assertMatch(
      err.message,
      /Refusing deleted path "\/lnk\/victim" of .*: "lnk" is a symbolic link \(never followed\)/,
    );
  });
});

Deno.test("hostile Docker rootfs: a symlink already in the upper dir is never followed", async () => {
  await inSandbox(async (sb) => {
    const root = `${sb.work}/rootfs`;
    await Deno.mkdir(root);
    await Deno.symlink(`${sb.sentinel}/etc`, `${root}/etc`);
    await Deno.symlink(`${sb.sentinel}/victim`, `${root}/v`);
    const err = await assertRejects(
      () => applyRootfsChanges(dirTarget(root), { deleted: ["/etc/shadow"] }),
      ConfinementError,
    );
    assertMatch(err.message, /"etc" is a symbolic link \(never followed\)/);
    // A deleted path that *is* a link: the link is replaced by the whiteout, its target untouched.
    await applyRootfsChanges(dirTarget(root), { deleted: ["/v"] });
    assert((await Deno.lstat(`${root}/v`)).isCharDevice);
  });
});

Deno.test("hostile Docker rootfs: honest changes still apply, whiteouts included", async () => {
  await inSandbox(async (sb) => {
    const root = `${sb.work}/rootfs`;
    await Deno.mkdir(`${root}/etc`, { recursive: true });
    await Deno.writeTextFile(`${root}/etc/motd`, "hello");
    const diff = `${sb.work}/rootfs-diff.tar`;
    await Deno.writeFile(
      diff,
      tar([
        { name: "usr", type: "5" },
        { name: "usr/bin", type: "5" },
        { name: "usr/bin/app", data: "#!/bin/sh\n", mode: 0o4755 },
        { name: "usr/bin/sh", type: "2", linkname: "/bin/busybox" },
        { name: "usr/bin/app2", type: "1", linkname: "usr/bin/app" },
      ]),
    );
    const r = await applyRootfsChanges(dirTarget(root), {
      diffTar: diff,
      deleted: ["/etc/motd", "/var/gone/deeper"],
    });
    assertEquals(r, { members: 5, whiteouts: 2 });
    assertEquals(await Deno.readTextFile(`${root}/usr/bin/app2`), "#!/bin/sh\n");
    // setuid dropped on extraction.
    assertEquals((await Deno.stat(`${root}/usr/bin/app`)).mode! & 0o7777, 0o755);
    assertEquals(await Deno.readLink(`${root}/usr/bin/sh`), "/bin/busybox");
    assert((await Deno.lstat(`${root}/etc/motd`)).isCharDevice);
    assert((await Deno.lstat(`${root}/var/gone/deeper`)).isCharDevice);
  });
});

// ---------------------------------------------------------- OCI layout tarball

function layoutBase(): RawMember[] {
  return [
    { name: "oci-layout", data: JSON.stringify({ imageLayoutVersion: "1.0.0" }) },
    { name: "index.json", data: JSON.stringify({ schemaVersion: 2, manifests: [] }) },
    { name: "blobs", type: "5" },
    { name: "blobs/sha256", type: "5" },
  ];
}

for (const c of PATH_CASES) {
  Deno.test(`hostile OCI layout tarball: ${c.name}`, async () => {
    await inSandbox(async (sb) => {
      const path = `${sb.work}/layout.tar`;
      await Deno.writeFile(path, tar([...layoutBase(), ...c.members(sb.sentinel)]));
      const err = await assertRejects(
        () => readLayoutTarball(path, `${sb.work}/out`),
        ConfinementError,
      );
      assertMatch(err.message, /^Refusing member ".*" of OCI layout tarball/);
      assertMatch(err.message, c.expect.layout);
    });
  });
}

for (const c of STRUCTURE_CASES) {
  Deno.test(`hostile OCI layout tarball: ${c.name}`, async () => {
    await inSandbox(async (sb) => {
      const path = `${sb.work}/layout.tar`;
      // The structure cases name checkpoint/ members: put them where a layout allows files.
      const members = c.members.map((m) =>
        m.name.startsWith("checkpoint/") ? { ...m, name: `blobs/sha256/${"a".repeat(64)}` } : m
      );
      await Deno.writeFile(path, structureTar(layoutBase(), { ...c, members }));
      const err = await assertRejects(() => readLayoutTarball(path, `${sb.work}/out`));
      const expect = new RegExp(
        c.expect.source.replace("checkpoint\\/pages-1.img", "blobs\\/sha256\\/a+"),
      );
      assertMatch((err as Error).message, expect);
    });
  });
}

Deno.test("hostile OCI layout tarball: a blob that is a symlink to a host file", async () => {
  await inSandbox(async (sb) => {
    const path = `${sb.work}/layout.tar`;
    await Deno.writeFile(
      path,
      tar([...layoutBase(), {
        name: `blobs/sha256/${"b".repeat(64)}`,
        type: "2",
        linkname: `${sb.sentinel}/etc/shadow`.slice(0, 99),
      }]),
    );
    const err = await assertRejects(
      () => readLayoutTarball(path, `${sb.work}/out`),
      ConfinementError,
    );
    assertMatch(err.message, /symbolic links are not allowed/);
  });
});

// ------------------------------------------------------------------ OCI extract

/** A layout holding one image whose single layer is `layer` (as given) and manifest `patch`ed. */
async function lyingLayout(
  dir: string,
  layer: Uint8Array,
  opts: { mediaType?: string; patch?: (m: Record<string, unknown>) => void; diffId?: string } = {},
): Promise<OciLayout> {
  const layout = await OciLayout.open(dir, { create: true });
  const l = await layout.writeBytes(layer);
  const config = await layout.writeBytes(
    enc.encode(JSON.stringify({ rootfs: { type: "layers", diff_ids: [opts.diffId ?? l.digest] } })),
  );
  const manifest: Record<string, unknown> = {
    schemaVersion: 2,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: [{ mediaType: opts.mediaType ?? "application/vnd.oci.image.layer.v1.tar", ...l }],
  };
  opts.patch?.(manifest);
  const m = await layout.writeBytes(enc.encode(JSON.stringify(manifest)));
  await layout.addManifest({ mediaType: "application/vnd.oci.image.manifest.v1+json", ...m }, "x");
  return layout;
}

Deno.test("hostile OCI extract: a gzip-bomb layer is cut at the limit and leaves no file", async () => {
  await inSandbox(async (sb) => {
    const bomb = await gzipZeros(64 << 20);
    await lyingLayout(`${sb.work}/layout`, bomb, {
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      diffId: `sha256:${"0".repeat(64)}`,
    });
    const err = await assertRejects(() =>
      extractCheckpointArchive(`${sb.work}/layout`, `${sb.work}/out.tar`, { maxBytes: 8 << 20 })
    );
    assertMatch(
      (err as Error).message,
      /Refusing layer sha256:\w+ of image sha256:\w+: it decompresses to more than 8388608 bytes/,
    );
    await assertRejects(() => Deno.lstat(`${sb.work}/out.tar`), Deno.errors.NotFound);
    const left = [...Deno.readDirSync(sb.work)].map((e) => e.name);
    assertEquals(left, ["layout"]);
  });
});

Deno.test("hostile OCI extract: a bomb beyond the ratio limit is refused early", async () => {
  await inSandbox(async (sb) => {
    const bomb = await gzipZeros(32 << 20);
    await lyingLayout(`${sb.work}/layout`, bomb, {
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
    });
    const err = await assertRejects(() =>
      extractCheckpointArchive(`${sb.work}/layout`, `${sb.work}/out.tar`, { maxRatio: 100 })
    );
    assertMatch((err as Error).message, /more than 100 times its size .*decompression bomb/);
  });
});

Deno.test("hostile OCI extract: manifests lying about sizes and digests", async () => {
  const layer = tar(checkpointBase());
  const cases: { name: string; patch: (m: Record<string, unknown>) => void; expect: RegExp }[] = [
    {
      name: "layer size smaller than the blob",
      patch: (m) => ((m.layers as { size: number }[])[0].size = 100),
      expect: /is \d+ bytes on disk, the manifest says 100/,
    },
    {
      name: "negative layer size",
      patch: (m) => ((m.layers as { size: number }[])[0].size = -1),
      expect: /"layers\[0\].size" -1 is not a non-negative integer/,
    },
    {
      name: "non-numeric layer size",
      patch: (m) => ((m.layers as { size: unknown }[])[0].size = "12"),
      expect: /"layers\[0\].size" "12" is not a non-negative integer/,
    },
    {
      name: "malformed layer digest",
      patch: (m) => ((m.layers as { digest: string }[])[0].digest = "sha256:../../../etc/shadow"),
      expect: /"layers\[0\].digest" "sha256:..\/..\/..\/etc\/shadow" is not sha256:<64 hex>/,
    },
    {
      name: "huge config",
      patch: (m) => ((m.config as { size: number }).size = 1 << 30),
      expect: /"config.size" 1073741824 is over the limit 4194304/,
    },
    {
      name: "layer digest of other content",
      patch: (m) => {
        // Points at the config blob with the layer's size: size matches nothing, digest lies.
        const l = (m.layers as { digest: string; size: number }[])[0];
        l.digest = (m.config as { digest: string }).digest;
      },
      expect: /bytes on disk, the manifest says|is corrupt/,
    },
  ];
  for (const c of cases) {
    await inSandbox(async (sb) => {
      await lyingLayout(`${sb.work}/layout`, layer, { patch: c.patch });
      const err = await assertRejects(() =>
        extractCheckpointArchive(`${sb.work}/layout`, `${sb.work}/out.tar`)
      );
      assertMatch((err as Error).message, c.expect, c.name);
      await assertRejects(() => Deno.lstat(`${sb.work}/out.tar`), Deno.errors.NotFound);
    });
  }
});

Deno.test("hostile OCI extract: archive not matching the config's diff_id", async () => {
  await inSandbox(async (sb) => {
    await lyingLayout(`${sb.work}/layout`, tar(checkpointBase()), {
      diffId: `sha256:${"1".repeat(64)}`,
    });
    const err = await assertRejects(() =>
      extractCheckpointArchive(`${sb.work}/layout`, `${sb.work}/out.tar`)
    );
    assertMatch((err as Error).message, /but the config's diff_id is sha256:1111/);
    await assertRejects(() => Deno.lstat(`${sb.work}/out.tar`), Deno.errors.NotFound);
  });
});

// --------------------------------------------------------- registry and pull

/** A registry that answers with whatever the case says. */
function lyingRegistry(
  answer: (path: string) => Response,
): { host: string; close: () => Promise<void> } {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => answer(new URL(req.url).pathname),
  );
  return { host: `127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

Deno.test("hostile registry: manifests lying about digests and sizes", async () => {
  const goodBlob = enc.encode("config");
  const manifestOf = (size: number, digest = digestBytes(goodBlob)) =>
    enc.encode(JSON.stringify({
      schemaVersion: 2,
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest, size },
      layers: [],
    }));
  const cases: {
    name: string;
    answer: (p: string) => Response;
    expect: RegExp;
    ref?: string;
  }[] = [
    {
      name: "digest header lies",
      answer: () =>
        new Response(manifestOf(6), {
          headers: {
            "content-type": "application/vnd.oci.image.manifest.v1+json",
            "docker-content-digest": `sha256:${"2".repeat(64)}`,
          },
        }),
      expect: /manifest digest mismatch/,
    },
    {
      name: "content differs from the digest asked for",
      ref: `sha256:${"3".repeat(64)}`,
      answer: () => new Response(manifestOf(6), { headers: { "content-type": "x" } }),
      expect: /manifest digest mismatch: got sha256:\w+, expected sha256:3333/,
    },
    {
      name: "5 MiB manifest (declared)",
      answer: () => new Response(new Uint8Array(5 << 20), { headers: { "content-type": "x" } }),
      expect: /declares 5242880 bytes, over the manifest limit 4194304/,
    },
    {
      name: "endless manifest (no Content-Length)",
      answer: () =>
        new Response(
          new ReadableStream({ pull: (ctl) => ctl.enqueue(new Uint8Array(1 << 16)) }),
          { headers: { "content-type": "x" } },
        ),
      expect: /larger than 4194304 bytes/,
    },
    {
      name: "negative blob size",
      answer: () => new Response(manifestOf(-5), { headers: { "content-type": "x" } }),
      expect: /"config.size" -5 is not a non-negative integer/,
    },
    {
      name: "blob bigger than the manifest says (no Content-Length)",
      answer: (p) =>
        p.includes("/manifests/")
          ? new Response(manifestOf(3), { headers: { "content-type": "x" } })
          : new Response(
            new ReadableStream({ pull: (ctl) => ctl.enqueue(new Uint8Array(1 << 16)) }),
          ),
      expect: /blob sha256:\w+: it is larger than 3 bytes/,
    },
    {
      name: "blob content not matching its digest",
      answer: (p) =>
        p.includes("/manifests/")
          ? new Response(manifestOf(6), { headers: { "content-type": "x" } })
          : new Response("CONFIG"),
      expect: /does not match sha256:/,
    },
  ];
  for (const c of cases) {
    await inSandbox(async (sb) => {
      const reg = lyingRegistry(c.answer);
      try {
        const ref = `${reg.host}/evil/img${c.ref ? `@${c.ref}` : ":t"}`;
        const err = await assertRejects(() =>
          pullImage(ref, `${sb.work}/layout`, { insecure: true })
        );
        assertMatch((err as Error).message, c.expect, c.name);
        // Nothing but the (empty) layout skeleton: no partial blob.
        const blobs = await snapshot(sb.work).catch(() => ({}));
        for (const k of Object.keys(blobs)) {
          assert(!/blobs\/sha256\/[.\w]/.test(k), `${c.name}: ${k}`);
        }
      } finally {
        await reg.close();
      }
    });
  }
});

Deno.test("hostile registry: RegistryClient.getManifest bounds a lying manifest", async () => {
  const reg = lyingRegistry(() => new Response(new Uint8Array(5 << 20)));
  const client = new RegistryClient(reg.host, { insecure: true });
  try {
    const err = await assertRejects(() => client.getManifest("evil/img", "t"));
    assertMatch((err as Error).message, /over the manifest limit/);
  } finally {
    client.close();
    await reg.close();
  }
});

// ------------------------------------------------- PodRestore storage source

function fakeDeps(storePath: string): ReconcilerDeps {
  const cls: CheckpointStorageClass = {
    apiVersion: "lpm.my.domain/v1",
    kind: "CheckpointStorageClass",
    metadata: { name: "c" },
    // Port 9 (discard): nothing is pushed in these tests; a push fails fast.
    spec: {
      provider: "local",
      local: { path: storePath },
      registry: { repository: "127.0.0.1:9/lpm" },
    },
  } as CheckpointStorageClass;
  return {
    lpm: { get: () => Promise.resolve(cls), list: () => Promise.resolve([cls]) },
    core: {},
  } as unknown as ReconcilerDeps;
}

function restoreOf(key: string): PodRestore {
  return {
    apiVersion: "lpm.my.domain/v1",
    kind: "PodRestore",
    metadata: { name: "r", namespace: "shop", uid: "0123456789abcdef" },
    spec: { source: { storage: { storageClassName: "c", key } } },
  } as PodRestore;
}

async function putText(
  store: ReturnType<typeof createLocalStore>,
  key: string,
  body: Uint8Array | string,
) {
  await store.put(
    key,
    new Blob([typeof body === "string" ? enc.encode(body) : body as Uint8Array<ArrayBuffer>])
      .stream(),
  );
}

function metadata(over: Record<string, unknown>): string {
  return JSON.stringify({
    namespace: "shop",
    pod: "web",
    container: "app",
    sourcePod: { metadata: { name: "web" }, spec: { containers: [{ name: "app" }] } },
    ...over,
  });
}

/** Runs a storage-source case: the work dir under `<sb.work>/tmp` must be gone afterwards. */
async function storageCase(
  setup: (store: ReturnType<typeof createLocalStore>) => Promise<void>,
  expect: RegExp,
  opts: { materialize?: boolean; reason?: string } = {},
) {
  await inSandbox(async (sb) => {
    const storePath = `${sb.work}/store`;
    const tmp = `${sb.work}/tmp`;
    await Deno.mkdir(tmp);
    const store = createLocalStore({ path: storePath });
    await setup(store);
    const deps = fakeDeps(storePath);
    const run = async () => {
      const src = await describeSource(deps, restoreOf("shop/web/cp1/"), { tmpDir: tmp });
      try {
        if (opts.materialize) {
          try {
            await src.materialize();
          } finally {
            // The archive work file is gone as soon as materialize fails, before close().
            const left: string[] = [];
            for await (const d of Deno.readDir(tmp)) {
              for await (const f of Deno.readDir(`${tmp}/${d.name}`)) left.push(f.name);
            }
            assertEquals(left.filter((n) => n.endsWith(".tar")), []);
          }
        }
      } finally {
        await src.close();
      }
    };
    const err = await assertRejects(run, RestoreFailure);
    assertMatch(err.message, expect);
    if (opts.reason) assertEquals(err.reason, opts.reason);
    assertEquals([...Deno.readDirSync(tmp)], [], "work dir left behind");
  });
}

for (const c of CONTAINER_NAME_CASES) {
  Deno.test(`hostile PodRestore storage metadata: container name ${c.name}`, async () => {
    await storageCase(
      (s) => putText(s, "shop/web/cp1/app.checkpoint.json", metadata({ container: c.container })),
      /^Checkpoint metadata "shop\/web\/cp1\/app.checkpoint.json": field "container" .* is not a container name/,
      { reason: "InvalidMetadata" },
    );
  });
}

Deno.test("hostile PodRestore storage metadata: archive key elsewhere, bad sha256, bad size", async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [
      { archive: { key: "other/ns/cp/app.tar" } },
      /field "archive.key" "other\/ns\/cp\/app.tar" is not next to its metadata/,
    ],
    [{ archive: { key: "shop/web/cp1/../x.tar" } }, /field "archive.key" .* is not a valid key/],
    [{ archive: { key: "/etc/shadow" } }, /field "archive.key" "\/etc\/shadow" is not a valid key/],
    [{ archive: { sha256: "../x" } }, /field "archive.sha256" "..\/x" is not 64 hex digits/],
    [{ archive: { size: -1 } }, /field "archive.size" -1 is not a non-negative integer/],
    [{ archive: "x" }, /field "archive" is not an object/],
  ];
  for (const [over, expect] of cases) {
    await storageCase(
      (s) => putText(s, "shop/web/cp1/app.checkpoint.json", metadata(over)),
      expect,
      { reason: "InvalidMetadata" },
    );
  }
});

Deno.test("PodRestore storage metadata of a pre-copy checkpoint (incremental archive) is refused, naming its image", async () => {
  const image = "registry.example/lpm/c@sha256:" + "a".repeat(64);
  await storageCase(
    (s) =>
      putText(
        s,
        "shop/web/cp1/app.checkpoint.json",
        metadata({ image: { reference: image }, preCopy: { parentImage: "registry.example/p" } }),
      ),
    new RegExp(
      `the archive is incremental against a pre-copy round .*"${
        image.replace(/[.]/g, "\\.")
      }": restore it from that image`,
    ),
    { reason: "IncrementalArchive" },
  );
});

Deno.test("hostile PodRestore storage metadata: a 9 MiB metadata document is refused", async () => {
  await storageCase(
    (s) => putText(s, "shop/web/cp1/app.checkpoint.json", `{"pad":"${"x".repeat(9 << 20)}"}`),
    /Cannot read checkpoint metadata .*: Refusing checkpoint metadata .* larger than 8388608 bytes/,
    { reason: "MetadataUnavailable" },
  );
});

Deno.test("hostile PodRestore storage archive: sha256 mismatch leaves no work file", async () => {
  await storageCase(
    async (s) => {
      await putText(s, "shop/web/cp1/app.tar", tar(checkpointBase()));
      await putText(
        s,
        "shop/web/cp1/app.checkpoint.json",
        metadata({ archive: { key: "shop/web/cp1/app.tar", sha256: "4".repeat(64) } }),
      );
    },
    /Archive "shop\/web\/cp1\/app.tar" has sha256 \w+ but its metadata records 4444/,
    {
      materialize: true,
      reason: "DigestMismatch",
    },
  );
});

Deno.test("hostile PodRestore storage archive: larger than its recorded size", async () => {
  await storageCase(
    async (s) => {
      await putText(s, "shop/web/cp1/app.tar", tar(checkpointBase()));
      await putText(s, "shop/web/cp1/app.checkpoint.json", metadata({ archive: { size: 1024 } }));
    },
    /Cannot import archive .*: Refusing archive "shop\/web\/cp1\/app.tar": it is larger than 1024 bytes/,
    {
      materialize: true,
      reason: "InvalidArchive",
    },
  );
});

for (const c of PATH_CASES.slice(0, 3)) {
  Deno.test(`hostile PodRestore storage archive (digest right, content hostile): ${c.name}`, async () => {
    await storageCase(
      async (s) => {
        const bytes = tar([...checkpointBase(), ...c.members("/nonexistent")]);
        await putText(s, "shop/web/cp1/app.tar", bytes);
        await putText(
          s,
          "shop/web/cp1/app.checkpoint.json",
          metadata({ archive: { sha256: digestBytes(bytes), size: bytes.length } }),
        );
      },
      c.expect.archive,
      { materialize: true, reason: "InvalidArchive" },
    );
  });
}
