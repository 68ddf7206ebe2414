import { assertEquals } from "@std/assert";
import { createKubeletDriver, kubeletHint } from "./kubelet.ts";

Deno.test("kubelet hints: 404 route vs missing pod, RBAC, runtime", () => {
  assertEquals(
    kubeletHint(404, "404 page not found"),
    "feature gate ContainerCheckpoint off or runtime without checkpoint support?",
  );
  assertEquals(
    kubeletHint(404, "container nope does not exist"),
    "the pod or container does not exist on this node",
  );
  assertEquals(kubeletHint(403).includes("nodes/checkpoint"), true);
  assertEquals(kubeletHint(500), "the container runtime failed the checkpoint");
});

Deno.test("kubelet driver: sweepArchives removes old unowned archives only", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/checkpoints`);
    const p = (n: string) => `${root}/checkpoints/${n}`;
    for (const n of ["checkpoint-old.tar", "checkpoint-kept.tar", "checkpoint-new.tar", "other"]) {
      await Deno.writeTextFile(p(n), "x");
    }
    const hourAgo = new Date(Date.now() - 3600_000);
    for (const n of ["checkpoint-old.tar", "checkpoint-kept.tar", "other"]) {
      await Deno.utime(p(n), hourAgo, hourAgo);
    }
    const driver = createKubeletDriver({
      nodeName: "n",
      access: { mode: "proxy", kube: { server: "", request: () => Promise.reject(), close() {} } },
      kubeletRootDir: root,
    });
    const removed = await driver.sweepArchives({
      olderThanMs: 30 * 60_000,
      keep: new Set([p("checkpoint-kept.tar")]),
    });
    driver.close();
    assertEquals(removed, [p("checkpoint-old.tar")]);
    const left = [...Deno.readDirSync(`${root}/checkpoints`)].map((e) => e.name).sort();
    assertEquals(left, ["checkpoint-kept.tar", "checkpoint-new.tar", "other"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
