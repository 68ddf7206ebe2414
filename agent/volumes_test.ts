import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import {
  apparentSize,
  captureVolumes,
  carriedVolumeNames,
  createVolumeCarrier,
  podUid,
} from "./volumes.ts";
import type { CheckpointJob } from "./pipeline.ts";

const UID = "0b6a1f3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";

const pod = {
  metadata: { uid: UID },
  spec: {
    volumes: [
      { name: "cache", emptyDir: {} },
      { name: "shared", emptyDir: { medium: "Memory" } },
      { name: "config", configMap: { name: "x" } },
      { name: "unused", emptyDir: {} },
    ],
    initContainers: [{ name: "init", volumeMounts: [{ name: "unused" }] }],
    containers: [
      { name: "app", volumeMounts: [{ name: "cache" }, { name: "config" }] },
      { name: "side", volumeMounts: [{ name: "shared" }, { name: "cache" }] },
    ],
  },
};

Deno.test("carriedVolumeNames: each emptyDir goes with the first container that mounts it", () => {
  assertEquals(carriedVolumeNames(pod, "app"), ["cache"]);
  assertEquals(carriedVolumeNames(pod, "side"), ["shared"]);
  assertEquals(carriedVolumeNames(pod, "other"), []);
  assertEquals(carriedVolumeNames(undefined, "app"), []);
  assertEquals(carriedVolumeNames({ spec: { volumes: "bad" } } as unknown, "app"), []);
});

Deno.test("podUid: only a real pod uid becomes a path segment", () => {
  assertEquals(podUid(pod), UID);
  assertThrows(() => podUid({ metadata: { uid: "../../etc" } }), Error, "not a pod uid");
  assertThrows(() => podUid({}), Error, "metadata.uid undefined");
});

async function kubeletRoot(): Promise<{ root: string; base: string }> {
  const root = await Deno.makeTempDir({ prefix: "lpm-vol-test-" });
  const base = `${root}/pods/${UID}/volumes/kubernetes.io~empty-dir`;
  await Deno.mkdir(`${base}/cache/sub`, { recursive: true });
  await Deno.writeTextFile(`${base}/cache/sub/data.txt`, "hello\n");
  await Deno.symlink("/etc/passwd", `${base}/cache/link`);
  return { root, base };
}

async function members(tar: string): Promise<string[]> {
  const out = await new Deno.Command("tar", { args: ["-tvf", tar], stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout).trim().split("\n");
}

Deno.test("captureVolumes: packs under lpm-volumes/, stores symlinks as links", async () => {
  const { root } = await kubeletRoot();
  try {
    const out = `${root}/out.tar`;
    const { size } = await captureVolumes({
      kubeletRoot: root,
      podUid: UID,
      names: ["cache"],
      outPath: out,
    });
    const list = await members(out);
    assertEquals(
      list.some((l) => l.endsWith("lpm-volumes/cache/sub/data.txt")),
      true,
      list.join("\n"),
    );
    // The link is kept as a link to its original target, never followed.
    assertEquals(list.some((l) => l.includes("lpm-volumes/cache/link -> /etc/passwd")), true);
    assertEquals(list.some((l) => l.includes("root:")), false);
    assertEquals(size > 0, true);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("captureVolumes: refuses bad names, symlinked volume dirs and oversize data", async () => {
  const { root, base } = await kubeletRoot();
  try {
    const out = `${root}/out.tar`;
    const o = { kubeletRoot: root, podUid: UID, outPath: out };
    await assertRejects(
      () => captureVolumes({ ...o, names: ["../x"] }),
      Error,
      'Bad volume name "../x"',
    );
    await assertRejects(
      () => captureVolumes({ ...o, podUid: "x/../y", names: ["cache"] }),
      Error,
      "Bad pod uid",
    );
    await Deno.symlink("/etc", `${base}/evil`);
    await assertRejects(
      () => captureVolumes({ ...o, names: ["evil"] }),
      Error,
      "is not a directory",
    );
    await assertRejects(
      () => captureVolumes({ ...o, names: ["missing"] }),
      Error,
      "is not a directory",
    );
    await assertRejects(
      () => captureVolumes({ ...o, names: ["cache"], maxBytes: 3 }),
      Error,
      "more than the 3 bytes",
    );
    assertEquals(await Deno.stat(out).then(() => true, () => false), false);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("apparentSize: file bytes and link lengths under the trees, links not followed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lpm-size-" });
  const outside = await Deno.makeTempDir({ prefix: "lpm-size-out-" });
  try {
    await Deno.mkdir(`${dir}/a/b`, { recursive: true });
    await Deno.writeFile(`${dir}/a/one`, new Uint8Array(1000));
    await Deno.writeFile(`${dir}/a/b/two`, new Uint8Array(2345));
    await Deno.writeFile(`${outside}/big`, new Uint8Array(1 << 20));
    await Deno.symlink(`${outside}/big`, `${dir}/a/link`);
    await Deno.mkdir(`${dir}/c`);
    await Deno.writeFile(`${dir}/c/three`, new Uint8Array(7));
    const link = `${outside}/big`.length;
    assertEquals(await apparentSize([`${dir}/a`, `${dir}/c`]), 1000 + 2345 + link + 7);
    assertEquals(await apparentSize([`${dir}/c`]), 7);
    // Counting stops once past the limit.
    assert((await apparentSize([`${dir}/a`], 10)) > 10);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("volume carrier: a class with spec.encryption refuses to carry emptyDirs in plaintext", async () => {
  const carrier = createVolumeCarrier({ kubeletRoot: "/nonexistent-kubelet-root" });
  const job = { container: "side", pod: "p", namespace: "ns" } as unknown as CheckpointJob;
  const err = await assertRejects(() =>
    carrier.carry(job, pod, {
      registry: { repository: "127.0.0.1:5000/lpm/x", insecure: true },
      workDir: "/nonexistent-work",
      tag: "t",
      encrypted: true,
    })
  );
  assert(String(err).includes("spec.encryption"), String(err));
  // The volumes this container carries are named.
  assert(String(err).includes(`"${carriedVolumeNames(pod, "side").join('", "')}"`), String(err));
});
