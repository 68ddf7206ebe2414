/**
 * The controller manager against a real API server with the scripted agent
 * (testing/scripted_agent.ts) in a process of its own, so that
 * `deno task bench controller` reads the controller's peak RSS (VmHWM) and
 * its metrics without the bench's own objects in them.
 *
 *   deno run -A bench/_scripted_controller.ts <kubeconfig> <poll-ms>
 *
 * Prints one JSON line `{"healthPort": N}` on stdout once it runs; stops on
 * SIGTERM. Settings as the local environment's controller: default
 * migration limits, 2 workers per controller.
 * @module
 */
import { ScriptedAgents } from "../testing/scripted_agent.ts";
import { startManager } from "../controllers/manager.ts";
import { Logger } from "../base/log.ts";
import { KubeConfigFile } from "../kube/kubeconfig.ts";

const [kubeconfig, pollMs] = Deno.args;
// lpm's own kubeconfig reader, as controllers/main.ts: no client-node in this process.
const kc = KubeConfigFile.fromFile(kubeconfig);
const agents = new ScriptedAgents();
// Only what the scripted agent is asked for matters; its call log would grow with the run.
agents.calls.push = () => 0;
const manager = await startManager({
  kubeConfig: kc,
  agents,
  healthPort: 0,
  pollMs: Number(pollMs),
  logger: new Logger({ component: "lpm-controller" }, "warn", (line) => console.error(line)),
});
console.log(JSON.stringify({ healthPort: manager.healthPort }));
// With --v8-flags=--expose-gc: the live heap after a full collection every 10 s, on stderr
// (what a leak would grow, as opposed to garbage a lazy collector has not reclaimed yet).
const gc = (globalThis as { gc?: () => void }).gc;
const gcTimer = gc
  ? setInterval(() => {
    gc();
    const m = Deno.memoryUsage();
    console.error(
      `[controller] after a full GC: heap used ${(m.heapUsed / 2 ** 20).toFixed(1)} MiB, ` +
        `RSS ${(m.rss / 2 ** 20).toFixed(1)} MiB`,
    );
  }, 10_000)
  : undefined;
await new Promise<void>((resolve) => Deno.addSignalListener("SIGTERM", () => resolve()));
clearInterval(gcTimer);
const t0 = Date.now();
await manager.stop();
console.error(`[controller] stopped in ${Date.now() - t0} ms`);
Deno.exit(0);
