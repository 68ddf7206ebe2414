import { assertEquals } from "@std/assert";
import { warmBaseImages, warmImageRefs } from "./warm_images.ts";
import type { AgentConnector, NodeAgent, PrepareRestoreRequest } from "../contract/agent.ts";
import type { PodMigration } from "../api/mod.ts";

const digest = "sha256:" + "a".repeat(64);
const pod = {
  spec: {
    containers: [
      { name: "app", image: "127.0.0.1:5000/lpm/app:1" },
      { name: "side", image: "busybox" },
    ],
  },
  status: {
    containerStatuses: [
      { name: "app", imageID: `127.0.0.1:5000/lpm/app@${digest}` },
      { name: "side", imageID: `sha256:${"b".repeat(64)}` }, // an image id, not a reference
    ],
  },
  // deno-lint-ignore no-explicit-any
} as any;

Deno.test("warmImageRefs: the runtime's repo@digest when it has one, else the spec's image", () => {
  assertEquals(warmImageRefs(pod), [
    { container: "app", image: `127.0.0.1:5000/lpm/app@${digest}` },
    { container: "side", image: "busybox" },
  ]);
});

Deno.test("warmBaseImages asks the target's agent to pull each image, loopback as plain HTTP", async () => {
  const asked: [string, PrepareRestoreRequest][] = [];
  const agents = {
    forNode: (node: string) =>
      Promise.resolve({
        prepareRestore: (req: PrepareRestoreRequest) => {
          asked.push([node, req]);
          return Promise.resolve({ id: req.operationId, phase: "Running" });
        },
      } as unknown as NodeAgent),
  } as unknown as AgentConnector;
  const pm = { metadata: { uid: "u1" }, spec: { podName: "p" } } as PodMigration;
  const errors: unknown[] = [];
  warmBaseImages(agents, pm, pod, { targetNode: "node-b", onError: (e) => errors.push(e) });
  await new Promise((r) => setTimeout(r, 10));
  assertEquals(asked, [
    ["node-b", {
      operationId: "u1-warm-app",
      image: `127.0.0.1:5000/lpm/app@${digest}`,
      insecure: true,
    }],
    ["node-b", { operationId: "u1-warm-side", image: "busybox", insecure: false }],
  ]);
  assertEquals(errors, []);
});
