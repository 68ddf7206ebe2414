/**
 * Smoke test: a busybox counter in the harness dockerd is checkpointed with
 * CRIU and restored through dockerode, and keeps counting from where it was.
 */
import Docker from "dockerode";
import { assert, assertGreater } from "@std/assert";
import { envTest, requirePart } from "../testing/env.ts";
import { buildBusyboxRootfsTar, counterScript } from "../localenv/mod.ts";

async function logNumbers(c: Docker.Container): Promise<number[]> {
  const buf = await c.logs({ stdout: true, stderr: false, follow: false }) as unknown as Uint8Array;
  // Non-TTY logs are multiplexed: 8-byte frame headers before each chunk.
  const out: number[] = [];
  let i = 0;
  let text = "";
  while (i + 8 <= buf.length) {
    const len = (buf[i + 4] << 24) | (buf[i + 5] << 16) | (buf[i + 6] << 8) | buf[i + 7];
    text += new TextDecoder().decode(buf.subarray(i + 8, i + 8 + len));
    i += 8 + len;
  }
  for (const l of text.split("\n")) if (/^\d+$/.test(l.trim())) out.push(Number(l.trim()));
  return out;
}

envTest({ uses: ["docker"] }, {
  name: "docker + CRIU: a checkpointed counter continues after restore (dockerode)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { socketPath } = requirePart("docker");
    const docker = new Docker({ socketPath });
    const tag = `lpm-smoke/busybox:${crypto.randomUUID().slice(0, 8)}`;
    const tar = await Deno.makeTempFile({ suffix: ".tar" });
    await buildBusyboxRootfsTar(tar);
    const stream = await docker.importImage(tar, {
      repo: tag.split(":")[0],
      tag: tag.split(":")[1],
    });
    await new Promise((res, rej) =>
      docker.modem.followProgress(stream, (e) => e ? rej(e) : res(null))
    );
    await Deno.remove(tar);
    const c = await docker.createContainer({
      Image: tag,
      Cmd: ["sh", "-c", counterScript(0.1)],
      HostConfig: { NetworkMode: "none" },
    });
    try {
      await c.start();
      await new Promise((r) => setTimeout(r, 1500));
      // Stop the process with a checkpoint (exit: true), then restore from it.
      // dockerode implements the checkpoint calls; its type definitions lack them.
      const cp = c as unknown as { createCheckpoint(o: Record<string, unknown>): Promise<unknown> };
      await cp.createCheckpoint({ CheckpointID: "cp1", Exit: true });
      const before = await logNumbers(c);
      const lastBefore = before.at(-1)!;
      assertGreater(lastBefore, 3, `counter should have counted before the checkpoint: ${before}`);
      const state = await c.inspect();
      assert(!state.State.Running, "container must be stopped after checkpoint --exit");
      // Docker tars the checkpoint directory into containerd's content store on
      // start, and fails with "content ... already exists" while the blob of the
      // checkpoint's own upload is still there: a nonce file makes it unique.
      const { dataRoot } = requirePart("docker");
      await Deno.writeTextFile(
        `${dataRoot}/containers/${c.id}/checkpoints/cp1/.nonce-${crypto.randomUUID()}`,
        "",
      );
      // `_body: {}` keeps docker-modem from sending the query as a JSON body too.
      await c.start({ _query: { checkpoint: "cp1" }, _body: {} } as never);
      await new Promise((r) => setTimeout(r, 1500));
      const after = (await logNumbers(c)).slice(before.length);
      assert(after.length > 0, "restored counter printed nothing");
      assertGreater(
        after[0],
        lastBefore,
        `restored counter restarted: before ${lastBefore}, after ${after}`,
      );
      assertGreater(after.at(-1)!, after[0]);
    } finally {
      await c.remove({ force: true }).catch(() => {});
      await docker.getImage(tag).remove({ force: true }).catch(() => {});
    }
  },
});
