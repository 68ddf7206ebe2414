/**
 * Child processes for the harness: each runs in a session of its own (so a
 * stop reaches its whole process group), logs to a file, and is stopped with
 * SIGTERM then SIGKILL.
 * @module
 */

/** A started child process. */
export interface ManagedProcess {
  /** Short name used in messages. */
  readonly name: string;
  /** Process id (also its process group id). */
  readonly pid: number;
  /** Where its stdout and stderr go. */
  readonly logPath: string;
  /** Resolves with the exit code when it exits. */
  readonly exited: Promise<number>;
  /** Stops the process group: SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/** Options for {@linkcode startProcess}. */
export interface StartOptions {
  /** File that receives stdout and stderr. */
  logPath: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Working directory. */
  cwd?: string;
}

/**
 * How a started process can be started again exactly as it was (the fault
 * tests' restarts, localenv/faults.ts): its argv, its whole environment, its
 * working directory, and the pid of the copy that runs now. Written beside
 * its log as `<log>.proc.json` (mode 0600: the environment holds secrets).
 */
export interface ProcessRecord {
  /** The name given to {@linkcode startProcess}. */
  name: string;
  /** The command line. */
  argv: string[];
  /** The whole environment it was started with (`LPM_LOG` included). */
  env: Record<string, string>;
  /** Working directory. */
  cwd: string;
  /** The pid (process group) of the copy that runs now; 0 while stopped on purpose. */
  pid: number;
}

/** Where the {@linkcode ProcessRecord} of the process logging to `logPath` is. */
export function processRecordPath(logPath: string): string {
  return `${logPath}.proc.json`;
}

/** Reads a {@linkcode ProcessRecord}, or undefined when there is none. */
export function readProcessRecord(logPath: string): ProcessRecord | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(processRecordPath(logPath))) as ProcessRecord;
  } catch {
    return undefined;
  }
}

/** Writes a {@linkcode ProcessRecord} atomically. */
export function writeProcessRecord(logPath: string, rec: ProcessRecord): void {
  const path = processRecordPath(logPath);
  Deno.writeTextFileSync(`${path}.tmp`, JSON.stringify(rec) + "\n", { mode: 0o600 });
  Deno.renameSync(`${path}.tmp`, path);
}

/**
 * Spawns `argv` in a new session (its pid is its process group), its output
 * appended to `$LPM_LOG`, with exactly `env` when `clearEnv` is set.
 */
export function spawnInSession(
  argv: string[],
  opts: { env: Record<string, string>; cwd?: string; clearEnv?: boolean },
): Deno.ChildProcess {
  return new Deno.Command("setsid", {
    args: ["bash", "-c", 'exec "$@" >>"$LPM_LOG" 2>&1 </dev/null', "--", ...argv],
    env: opts.env,
    clearEnv: opts.clearEnv,
    cwd: opts.cwd,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** Starts `cmd args...` in a new session with its output in `logPath`. */
export function startProcess(
  name: string,
  argv: string[],
  opts: StartOptions,
): ManagedProcess {
  const env = { ...Deno.env.toObject(), ...opts.env, LPM_LOG: opts.logPath };
  const child = spawnInSession(argv, { env, cwd: opts.cwd, clearEnv: true });
  const pid = child.pid;
  writeProcessRecord(opts.logPath, { name, argv, env, cwd: opts.cwd ?? Deno.cwd(), pid });
  let done = false;
  const exited = child.status.then((s) => {
    done = true;
    return s.code;
  });
  return {
    name,
    pid,
    logPath: opts.logPath,
    exited,
    async stop(graceMs = 10_000) {
      // A fault test may have replaced this process (localenv/faults.ts):
      // stop the copy that runs now too.
      const now = readProcessRecord(opts.logPath)?.pid;
      if (now && now !== pid) await stopGroup(now, graceMs);
      if (done) {
        killGroup(pid, "SIGKILL"); // stragglers of an exited leader
        return;
      }
      killGroup(pid, "SIGTERM");
      const timer = new Promise<"timeout">((r) => {
        const t = setTimeout(() => r("timeout"), graceMs);
        exited.finally(() => clearTimeout(t));
      });
      if (await Promise.race([exited, timer]) === "timeout") {
        killGroup(pid, "SIGKILL");
        await exited;
      }
      killGroup(pid, "SIGKILL");
    },
  };
}

/** Sends `signal` to the process group `pgid`, ignoring a group that is gone. */
export function killGroup(pgid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

/**
 * Stops the process group `pgid` that is not (or no longer) our child:
 * SIGTERM, then SIGKILL when its leader still lives after `graceMs`.
 */
export async function stopGroup(pgid: number, graceMs = 10_000): Promise<void> {
  killGroup(pgid, "SIGTERM");
  const t0 = Date.now();
  while (isAlive(pgid) && Date.now() - t0 < graceMs) {
    await new Promise((r) => setTimeout(r, 100));
  }
  killGroup(pgid, "SIGKILL");
}

/** True when a process with this pid exists (and is not a zombie). */
export function isAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

/** The last `lines` lines of a log file, for error messages. */
export async function tailLog(path: string, lines = 20): Promise<string> {
  try {
    const text = await Deno.readTextFile(path);
    return text.trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** Processes started together, stopped together (last started first). */
export interface ProcessGroup {
  /** The processes, in start order. */
  processes: ManagedProcess[];
  /** Stops every process, last started first. */
  stop(): Promise<void>;
}

/**
 * Runs `start`, which adds the processes it starts to the group it is given.
 * When `start` fails, every process it started is stopped and the error,
 * prefixed with `what`, carries the tail of each one's log.
 */
export async function startGroup<T>(
  what: string,
  start: (group: ProcessGroup) => Promise<T>,
): Promise<T & ProcessGroup> {
  const processes: ManagedProcess[] = [];
  const group: ProcessGroup = {
    processes,
    async stop() {
      for (const p of [...processes].reverse()) await p.stop();
    },
  };
  try {
    return { ...await start(group), processes, stop: group.stop };
  } catch (err) {
    const logs = await Promise.all(
      processes.map(async (p) => `--- ${p.name} (${p.logPath}):\n${await tailLog(p.logPath, 15)}`),
    );
    await group.stop();
    throw new Error(`${what}: ${(err as Error).message}\n${logs.join("\n")}`);
  }
}
