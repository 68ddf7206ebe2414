import { assertEquals } from "@std/assert";
import type { ContainerCheckpoint, PodCheckpoint } from "../api/mod.ts";
import { nodeCheckpoints, selectNodeCollection } from "./checkpoint_retention_nodes.ts";

const NOW = new Date("2026-01-10T00:00:00Z");
const at = (h: number) => new Date(NOW.getTime() - h * 3_600_000).toISOString();

function pc(name: string, hoursAgo: number, o: Partial<PodCheckpoint["spec"]> = {}): PodCheckpoint {
  return {
    metadata: { name, namespace: "ns", uid: `uid-${name}` },
    spec: { podName: "counter", storageClassName: "node", ...o },
    status: { phase: "Succeeded", completionTime: at(hoursAgo) },
  };
}

function child(owner: string, size: number): ContainerCheckpoint {
  return {
    metadata: {
      name: `${owner}-app`,
      namespace: "ns",
      uid: `uid-${owner}-app`,
      ownerReferences: [{
        apiVersion: "lpm.my.domain/v1",
        kind: "PodCheckpoint",
        name: owner,
        uid: `uid-${owner}`,
      }],
    },
    spec: { podName: "counter", containerName: "app" },
    status: {
      phase: "Succeeded",
      archive: {
        storageClassName: "node",
        key: `ns/counter/uid-${owner}/app.tar`,
        sha256: "",
        size,
      },
    },
  };
}

const names = (xs: { name: string }[]) => xs.map((x) => x.name).sort();

Deno.test("node retention: maxCount keeps the newest per pod; needed ones stay; other classes and unfinished ones are not counted", () => {
  const pcs = [1, 2, 3, 4, 5].map((i) => pc(`cp-${i}`, 10 - i));
  const other = pc("other-pod", 50, { podName: "db" });
  const foreign = pc("foreign", 60, { storageClassName: "s3" });
  const running: PodCheckpoint = { ...pc("running", 70), status: { phase: "Running" } };
  const ccs = pcs.map((p) => child(p.metadata!.name!, 100));
  const all = nodeCheckpoints([...pcs, other, foreign, running], ccs, "node");
  assertEquals(names(all), ["cp-1", "cp-2", "cp-3", "cp-4", "cp-5", "other-pod"]);
  const sel = selectNodeCollection(all, {
    className: "node",
    retention: { maxCount: 2 },
    now: NOW,
    needed: (id) => id === "uid-cp-2",
  });
  assertEquals(names(sel.collect), ["cp-1", "cp-3"]);
  assertEquals(sel.collect.map((c) => c.reason), ["maxCount", "maxCount"]);
  assertEquals(names(sel.protected), ["cp-2"]);
  assertEquals(sel.checkpoints, 4); // cp-2, cp-4, cp-5 and other-pod's
  assertEquals(sel.bytes, 300);
});

Deno.test("node retention: maxAge by completion time; a restore's storage prefix protects; standalone ContainerCheckpoints count", () => {
  const cc: ContainerCheckpoint = {
    metadata: { name: "solo", namespace: "ns", uid: "uid-solo" },
    spec: { podName: "counter", containerName: "app", storageClassName: "node" },
    status: { phase: "Succeeded", checkpointTime: at(100), archive: undefined },
  };
  const all = nodeCheckpoints([pc("old", 80), pc("kept", 80), pc("new", 1)], [cc], "node");
  const sel = selectNodeCollection(all, {
    className: "node",
    retention: { maxAge: "72h" },
    now: NOW,
    needed: (_id, prefix) => prefix === "ns/counter/uid-kept/",
  });
  assertEquals(names(sel.collect), ["old", "solo"]);
  assertEquals(sel.collect.map((c) => c.kind).sort(), ["ContainerCheckpoint", "PodCheckpoint"]);
  assertEquals(names(sel.protected), ["kept"]);
  assertEquals(sel.checkpoints, 2);
});

Deno.test("node retention: no policy collects nothing", () => {
  const all = nodeCheckpoints([pc("a", 1000), pc("b", 2000)], [], "node");
  const sel = selectNodeCollection(all, { className: "node", now: NOW, needed: () => false });
  assertEquals(sel.collect, []);
  assertEquals(sel.checkpoints, 2);
});
