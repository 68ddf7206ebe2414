/**
 * The environment leaves nothing behind: Ctrl-C (SIGINT) on a foreground
 * `cluster:up` stops every process, unmounts everything and removes every
 * directory it made, even with a container running in its dockerd.
 */
import { assert, assertEquals } from "@std/assert";
import { envTest } from "../testing/env.ts";
import { isAlive } from "../localenv/_process.ts";
import { waitFor } from "../localenv/_wait.ts";
import type { EnvironmentInfo } from "../localenv/info.ts";

async function processesMentioning(paths: string[]): Promise<string[]> {
  const found: string[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name) || Number(e.name) === Deno.pid) continue;
    try {
      const cmd = (await Deno.readTextFile(`/proc/${e.name}/cmdline`)).replaceAll("\0", " ");
      if (paths.some((p) => cmd.includes(p))) found.push(`${e.name}: ${cmd}`);
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

envTest({ starts: ["kube", "minio", "registry", "docker"] }, {
  name: "harness: SIGINT on cluster:up --foreground leaves no process, mount or directory",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const state = await Deno.makeTempDir({ prefix: "lpm-state-" });
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../localenv/cli.ts", import.meta.url).pathname,
        "up",
        "--foreground",
      ],
      env: { LPM_STATE_DIR: state },
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    try {
      const info = await waitFor(async () => {
        try {
          return JSON.parse(await Deno.readTextFile(`${state}/env.json`)) as EnvironmentInfo;
        } catch {
          return undefined;
        }
      }, {
        what: "the environment's env.json",
        timeoutMs: 120_000,
        exited: child.status.then((s) => s.code),
      });
      assert(info.kube && info.minio && info.registry && info.docker, "every part should run");
      // A running container, so that shims and mounts exist at stop time.
      const client = Deno.createHttpClient({
        proxy: { transport: "unix", path: info.docker.socketPath },
      });
      try {
        const tar = await Deno.makeTempFile();
        const { buildBusyboxRootfsTar } = await import("../localenv/images.ts");
        await buildBusyboxRootfsTar(tar);
        const imp = await fetch("http://d/images/create?fromSrc=-&repo=cleanup&tag=t", {
          method: "POST",
          body: await Deno.readFile(tar),
          client,
        });
        await imp.body?.cancel();
        await Deno.remove(tar);
        const cr = await fetch("http://d/containers/create", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            Image: "cleanup:t",
            Cmd: ["sleep", "600"],
            HostConfig: { NetworkMode: "none" },
          }),
          client,
        });
        const { Id } = await cr.json();
        const st = await fetch(`http://d/containers/${Id}/start`, { method: "POST", client });
        await st.body?.cancel();
        assertEquals(st.status, 204);
      } finally {
        client.close();
      }

      child.kill("SIGINT");
      const status = await child.status;
      assertEquals(status.code, 0, `cluster:up exited with ${status.code}: ${await stderr}`);
      for (const pid of info.pids) assert(!isAlive(pid), `process ${pid} survived the stop`);
      const roots = [info.dir, ...info.extraDirs];
      assertEquals(
        await processesMentioning(roots),
        [],
        "processes still mention the environment's dirs",
      );
      const mounts = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
        .filter((l) => roots.some((r) => l.includes(r)));
      assertEquals(mounts, [], "mounts left behind");
      for (const r of roots) {
        assert(!(await Deno.stat(r).then(() => true, () => false)), `${r} was not removed`);
      }
      for (const f of ["env.json", "kubeconfig", "cluster.pid"]) {
        assert(
          !(await Deno.stat(`${state}/${f}`).then(() => true, () => false)),
          `${f} left in the state dir`,
        );
      }
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
      await stderr.catch(() => "");
      await Deno.remove(state, { recursive: true }).catch(() => {});
    }
  },
});
