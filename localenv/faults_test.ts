import { assert, assertEquals, assertRejects } from "@std/assert";
import { writeProcessRecord } from "./_process.ts";
import { environmentFaults } from "./faults.ts";
import { freePort } from "./_wait.ts";
import type { EnvironmentInfo } from "./info.ts";

/**
 * A fake environment whose "registry" part is `script` run by bash in `dir`
 * (the start count in `dir/starts`); the real parts are the chaos tests'.
 */
async function fakeRegistry(script: string): Promise<
  { info: EnvironmentInfo; dir: string; starts: () => number }
> {
  const dir = await Deno.makeTempDir({ prefix: "lpm-faults-" });
  await Deno.mkdir(`${dir}/logs`);
  const port = freePort();
  const logPath = `${dir}/logs/registry.log`;
  const counted = `n=$(cat starts 2>/dev/null || echo 0); echo $((n+1)) > starts; ${script}`;
  writeProcessRecord(logPath, {
    name: "registry",
    argv: ["bash", "-c", counted.replaceAll("PORT", String(port))],
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", LPM_LOG: logPath },
    cwd: dir,
    pid: 0,
  });
  const info = {
    dir,
    logDir: `${dir}/logs`,
    parts: [],
    pids: [],
    extraDirs: [],
    registry: { host: `127.0.0.1:${port}` },
  } as unknown as EnvironmentInfo;
  return { info, dir, starts: () => Number(Deno.readTextFileSync(`${dir}/starts`).trim()) };
}

Deno.test("faults: a part that exits before it serves is started again until it serves", async () => {
  const { info, dir, starts } = await fakeRegistry(
    '[ "$n" -ge 2 ] || { echo "bind: address already in use"; exit 1; }; ' +
      `exec ${Deno.execPath()} eval "Deno.serve({ hostname: '127.0.0.1', port: PORT }, () => new Response('ok'))"`,
  );
  const faults = environmentFaults(info);
  try {
    await faults.start("registry");
    assertEquals(starts(), 3);
    const r = await fetch(`http://${info.registry!.host}/v2/`);
    await r.body?.cancel();
    assert(r.ok, `the third copy serves: HTTP ${r.status}`);
  } finally {
    await faults.kill("registry");
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("faults: a part that never serves fails with its log's tail", async () => {
  const { info, dir, starts } = await fakeRegistry(
    'echo "bind: address already in use"; exit 1',
  );
  const faults = environmentFaults(info);
  try {
    await assertRejects(
      () => faults.start("registry"),
      Error,
      "bind: address already in use",
    );
    assertEquals(starts(), 3);
    assertEquals(faults.pid("registry"), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
