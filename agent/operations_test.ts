import { assertEquals, assertMatch, assertRejects } from "@std/assert";
import { OperationConflictError, OperationStore } from "./operations.ts";

Deno.test("operations: persisted, idempotent, and failed on restart with work dirs removed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const a = await OperationStore.open(dir);
    const { created } = await a.begin("op-1", "checkpoint", "fp");
    assertEquals(created, true);
    assertEquals((await a.begin("op-1", "checkpoint", "fp")).created, false);
    await assertRejects(() => a.begin("op-1", "checkpoint", "other"), OperationConflictError);
    await assertRejects(() => a.begin("../x", "checkpoint", "fp"), Error, "is invalid");
    await a.update("op-1", { phase: "Running", step: "storing archive" });
    await a.update("op-1", { bytesDone: 5, bytesTotal: 10 });
    await Deno.mkdir(a.workDir("op-1"), { recursive: true });
    await Deno.writeTextFile(`${a.workDir("op-1")}/partial.tar`, "x");
    // The dump was taken (the kubelet's archive on the node), the upload was cut off.
    const archive = `${dir}/checkpoint-counter.tar`;
    await Deno.writeTextFile(archive, "archive");
    await a.update("op-1", { localPaths: [archive, "../outside"] });
    await a.begin("op-2", "prepareRestore", "fp2");
    await a.update("op-2", { phase: "Succeeded", step: "done" });
    // Nothing is written after the final state.
    await a.update("op-2", { phase: "Running", step: "late" });
    await a.flush();

    // "Restart": a new store on the same dir.
    const recovered: string[] = [];
    const b = await OperationStore.open(dir, { onRecovered: (op) => recovered.push(op.id) });
    assertEquals(recovered, ["op-1"]);
    const op1 = b.get("op-1")!;
    assertEquals(op1.phase, "Failed");
    assertMatch(op1.message, /Agent restarted during "storing archive"/);
    assertEquals(b.get("op-2")!.phase, "Succeeded");
    assertEquals(b.get("op-2")!.step, "done");
    await assertRejects(() => Deno.stat(b.workDir("op-1")));
    await assertRejects(() => Deno.stat(archive), Deno.errors.NotFound); // the unpublished archive
    assertMatch(op1.message, /its archive on the node was removed/);
    assertEquals(op1.localPaths, []);
    assertEquals(b.running(), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
