/**
 * `deno task cluster:up` / `cluster:down`: start the local environment in the
 * background (or the foreground with --foreground) and stop it.
 *
 *   deno task cluster:up [--parts kube,minio,registry,docker] [--nodes 2] [--with-lpm | --in-cluster] [--foreground]
 *
 * `--with-lpm` also runs an lpm agent per node and the controller (needs --nodes).
 * `--in-cluster` instead builds lpm's images, pushes them to the registry and
 * installs lpm with `kubectl apply -k` (a DaemonSet and a Deployment; needs --nodes).
 *   deno task cluster:down
 *   deno task cluster:lpm-restart   restart the agents and the controller from the current code

 *
 * State lives in `.lpm/` (or `$LPM_STATE_DIR`): `kubeconfig`, `env.json`
 * (endpoints, credentials, pids), `cluster.pid`, `cluster.log`.
 * @module
 */
import { startEnvironment } from "./environment.ts";
import { ALL_PARTS, type Part } from "./info.ts";
import { isAlive } from "./_process.ts";
import { type Args, parseArgs } from "../base/args.ts";

const REPO_ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const STATE = Deno.env.get("LPM_STATE_DIR") ?? `${REPO_ROOT}/.lpm`;
const PID_FILE = `${STATE}/cluster.pid`;
const ENV_FILE = `${STATE}/env.json`;
const KUBECONFIG = `${STATE}/kubeconfig`;
const LOG_FILE = `${STATE}/cluster.log`;

function say(msg: string): void {
  console.error(`[lpm cluster] ${msg}`);
}

const USAGE =
  "usage: cli.ts up [--parts kube,minio,registry,docker] [--nodes N] [--with-lpm | --in-cluster] [--foreground] | down | lpm-restart";

/** The flags of `down` and `lpm-restart` (and of no command). */
const HELP_ONLY = { known: ["help"], booleans: ["help"], aliases: { h: "help" } };

/** The flags of `up` and `serve`. */
function parseUpArgs(args: string[]): Args {
  return parseArgs(args, {
    known: ["parts", "nodes", "with-lpm", "in-cluster", "foreground", "help"],
    booleans: ["with-lpm", "in-cluster", "foreground", "help"],
    aliases: { h: "help" },
  });
}

function parseParts(a: Args): Part[] {
  if (a.flags.parts === undefined) return [...ALL_PARTS];
  const parts = a.flags.parts.split(",").filter(Boolean);
  for (const p of parts) {
    if (!ALL_PARTS.includes(p as Part)) {
      throw new Error(`Unknown part "${p}" in --parts (known: ${ALL_PARTS.join(", ")})`);
    }
  }
  return parts as Part[];
}

/** `--nodes N`: worker nodes (kubelet + containerd) to add; 0 when absent. */
function parseNodes(a: Args): number {
  if (a.flags.nodes === undefined) return 0;
  const n = Number(a.flags.nodes);
  if (!/^\d+$/.test(a.flags.nodes) || n > 26) {
    throw new Error(`Bad --nodes value "${a.flags.nodes}" (want an integer from 0 to 26)`);
  }
  return n;
}

function runningPid(): number | undefined {
  try {
    const pid = Number(Deno.readTextFileSync(PID_FILE).trim());
    return isAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function serve(parts: Part[], nodes = 0, lpm = false, inCluster = false): Promise<void> {
  await Deno.mkdir(STATE, { recursive: true });
  const env = await startEnvironment({ parts, nodes, lpm, inCluster, onProgress: say });
  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    say("stopping the environment");
    await env.stop();
    for (const f of [ENV_FILE, KUBECONFIG, PID_FILE]) await Deno.remove(f).catch(() => {});
    say("stopped and cleaned");
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", shutdown);
  Deno.addSignalListener("SIGTERM", shutdown);
  // SIGHUP: restart lpm from the current code (deno task cluster:lpm-restart).
  Deno.addSignalListener("SIGHUP", () => {
    env.restartLpm().then(
      (l) => {
        Deno.writeTextFileSync(ENV_FILE, JSON.stringify(env.info, null, 2) + "\n");
        say(`lpm restarted: agents ${l.agents.map((a) => `${a.node}=${a.address}`).join(", ")}`);
      },
      (err) => say(`ERROR: lpm restart failed: ${(err as Error).message}`),
    );
  });
  if (env.info.kube) await Deno.copyFile(env.info.kube.kubeconfig, KUBECONFIG);
  await Deno.writeTextFile(PID_FILE, `${Deno.pid}\n`);
  await Deno.writeTextFile(ENV_FILE, JSON.stringify(env.info, null, 2) + "\n");
  say(`ready; kubeconfig: ${KUBECONFIG}; environment: ${ENV_FILE}; logs: ${env.info.logDir}`);
  // Keep the process alive until a signal arrives.
  await new Promise(() => {});
}

async function up(a: Args): Promise<void> {
  const parts = parseParts(a);
  const nodes = parseNodes(a);
  const withLpm = a.flags["with-lpm"] === "true";
  const inCluster = a.flags["in-cluster"] === "true";
  if (inCluster && withLpm) throw new Error("--in-cluster and --with-lpm exclude each other");
  if (inCluster && nodes === 0) throw new Error("--in-cluster needs nodes: add --nodes 2");
  const pid = runningPid();
  if (pid) {
    say(`already running (pid ${pid}); kubeconfig: ${KUBECONFIG}`);
    return;
  }
  await Deno.mkdir(STATE, { recursive: true });
  for (const f of [ENV_FILE, KUBECONFIG, PID_FILE]) await Deno.remove(f).catch(() => {});
  if (a.flags.foreground === "true") {
    await serve(parts, nodes, withLpm, inCluster);
    return;
  }
  const child = new Deno.Command("setsid", {
    args: [
      "bash",
      "-c",
      'exec "$@" >"$LPM_LOG" 2>&1 </dev/null',
      "--",
      Deno.execPath(),
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "serve",
      "--parts",
      parts.join(","),
      "--nodes",
      String(nodes),
      ...(withLpm ? ["--with-lpm"] : []),
      ...(inCluster ? ["--in-cluster"] : []),
    ],
    env: { LPM_LOG: LOG_FILE },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let exited: number | undefined;
  child.status.then((s) => exited = s.code);
  let shown = 0;
  const t0 = Date.now();
  while (true) {
    const log = await Deno.readTextFile(LOG_FILE).catch(() => "");
    const lines = log.split("\n").filter(Boolean);
    for (const l of lines.slice(shown)) console.error(l);
    shown = lines.length;
    if (await Deno.stat(ENV_FILE).then(() => true, () => false)) break;
    if (exited !== undefined) {
      throw new Error(`The environment failed to start (exit ${exited}); see ${LOG_FILE}`);
    }
    if (Date.now() - t0 > 300_000) {
      throw new Error(`Timed out starting the environment; see ${LOG_FILE}`);
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  child.unref();
  say(
    `up in ${
      ((Date.now() - t0) / 1000).toFixed(1)
    } s. Try: kubectl --kubeconfig ${KUBECONFIG} get nodes,crd`,
  );
  say("stop with: deno task cluster:down");
}

/** Restarts lpm in the running environment and waits until env.json shows the new processes. */
async function lpmRestart(): Promise<void> {
  const pid = runningPid();
  if (!pid) {
    throw new Error("The environment does not run: deno task cluster:up --nodes 2 --with-lpm");
  }
  const before = await Deno.readTextFile(ENV_FILE);
  if (!JSON.parse(before).lpm) throw new Error("The environment runs without lpm (--with-lpm)");
  Deno.kill(pid, "SIGHUP");
  const t0 = Date.now();
  while ((await Deno.readTextFile(ENV_FILE)) === before) {
    if (Date.now() - t0 > 60_000) throw new Error(`lpm did not restart in 60 s; see ${LOG_FILE}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  say("lpm restarted");
}

async function down(): Promise<void> {
  const pid = runningPid();
  if (!pid) {
    say("not running");
    return;
  }
  Deno.kill(pid, "SIGTERM");
  const t0 = Date.now();
  while (isAlive(pid)) {
    if (Date.now() - t0 > 90_000) throw new Error(`Environment (pid ${pid}) did not stop in 90 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
  say("down");
}

if (import.meta.main) {
  const [cmd, ...args] = Deno.args;
  try {
    const a = cmd === "up" || cmd === "serve" ? parseUpArgs(args) : parseArgs(args, HELP_ONLY);
    if (a.flags.help === "true") {
      console.log(USAGE);
      Deno.exit(0);
    }
    if (!["up", "serve", "down", "lpm-restart"].includes(cmd)) {
      console.error(USAGE);
      Deno.exit(2);
    }
    if (cmd === "up") await up(a);
    else if (cmd === "serve") {
      await serve(
        parseParts(a),
        parseNodes(a),
        a.flags["with-lpm"] === "true",
        a.flags["in-cluster"] === "true",
      );
    } else if (cmd === "down") await down();
    else await lpmRestart();
  } catch (err) {
    say(`ERROR: ${(err as Error).message}`);
    Deno.exit(1);
  }
}
