/**
 * Test fixtures for the Docker driver: a busybox image imported under a
 * unique tag, a counter container, and its printed numbers.
 * @module
 */
import type Docker from "dockerode";
import { buildBusyboxRootfsTar, counterScript } from "../localenv/mod.ts";

/** Imports the harness busybox rootfs as `lpm-test/busybox:<random>`; returns the tag. */
export async function importBusybox(docker: Docker): Promise<string> {
  const tag = `lpm-test/busybox:${crypto.randomUUID().slice(0, 8)}`;
  const tar = await Deno.makeTempFile({ suffix: ".tar" });
  try {
    await buildBusyboxRootfsTar(tar);
    const stream = await docker.importImage(tar, {
      repo: tag.split(":")[0],
      tag: tag.split(":")[1],
    });
    await new Promise((res, rej) =>
      docker.modem.followProgress(stream, (e: unknown) => e ? rej(e) : res(null))
    );
  } finally {
    await Deno.remove(tar).catch(() => {});
  }
  return tag;
}

/** Starts the counter (`i=1,2,...` every `intervalS`) in a new container. */
export async function startCounter(
  docker: Docker,
  image: string,
  opts: { name: string; intervalS?: number },
): Promise<Docker.Container> {
  const c = await docker.createContainer({
    name: opts.name,
    Image: image,
    Cmd: ["sh", "-c", counterScript(opts.intervalS ?? 0.2)],
    HostConfig: { NetworkMode: "none" },
  });
  await c.start();
  return c;
}

/** The numbers a container printed on stdout so far (demultiplexed logs). */
export async function logNumbers(c: Docker.Container): Promise<number[]> {
  const buf = await c.logs({ stdout: true, stderr: false, follow: false }) as unknown as Uint8Array;
  let text = "";
  let i = 0;
  while (i + 8 <= buf.length) {
    const len = (buf[i + 4] << 24) | (buf[i + 5] << 16) | (buf[i + 6] << 8) | buf[i + 7];
    text += new TextDecoder().decode(buf.subarray(i + 8, i + 8 + len));
    i += 8 + len;
  }
  return text.split("\n").map((l) => l.trim()).filter((l) => /^\d+$/.test(l)).map(Number);
}

/** Runs a tool and returns its stdout; throws with stderr on failure. */
export async function runTool(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed: ${dec.decode(out.stderr)}${dec.decode(out.stdout)}`,
    );
  }
  return dec.decode(out.stdout);
}
