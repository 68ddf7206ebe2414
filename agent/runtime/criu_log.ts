/**
 * The runtime's CRIU log after a failed dump: where it is (containerd's shim
 * names it in its error, `... path= <bundle>/criu-dump.log`), reading it
 * safely, and the few `Error` lines people need to act on.
 *
 * Everything here comes from outside: the path is taken from an error text
 * and is only read when its real path (symlinks resolved) lies inside one of
 * the runtime directories the agent was given and names a regular `.log`
 * file; at most the last `maxBytes` are read; lines put into messages are
 * stripped of control characters and bounded.
 * @module
 */

/** How much of a CRIU log the agent reads and keeps (its end: the failure is there). */
export const CRIU_LOG_MAX_BYTES = 1 << 20;

/**
 * Where runtimes keep CRIU logs on a node: containerd's shim bundles
 * (`/run/containerd/io.containerd.runtime.v2.task/<ns>/<id>/criu-dump.log`)
 * and CRI-O's container user data (`.../overlay-containers/<id>/userdata/dump.log`).
 */
export const DEFAULT_CRIU_LOG_DIRS: readonly string[] = [
  "/run/containerd",
  "/var/run/containerd",
  "/var/lib/containers/storage",
  "/run/containers/storage",
];

/** A CRIU log read from the node. */
export interface CriuLog {
  /** The file's real path on the node. */
  path: string;
  /** Its text (the last `maxBytes` at most). */
  content: string;
  /** True when the file was longer than `content`. */
  truncated: boolean;
}

/** An error that carries the CRIU log of the failure. */
export class CriuFailureError extends Error {
  /** Creates the error. */
  constructor(message: string, readonly criuLog: CriuLog) {
    super(message);
    this.name = "CriuFailureError";
  }
}

/** The CRIU log carried by `err` or by one of its causes. */
export function criuLogOf(err: unknown): CriuLog | undefined {
  for (let e = err, depth = 0; e && depth < 8; e = (e as Error).cause, depth++) {
    if (e instanceof CriuFailureError) return e.criuLog;
  }
  return undefined;
}

/** Absolute paths of `.log` files named in a runtime's error text (at most 5). */
export function logPathsIn(text: string): string[] {
  const found = new Set<string>();
  for (const m of text.slice(0, 64 << 10).matchAll(/\/[\w.@+\/-]{1,4096}?\.log(?![\w.-])/g)) {
    found.add(m[0]);
    if (found.size === 5) break;
  }
  // CRIU's own log names first: "criu-dump.log" (containerd), "dump.log" (runc, CRI-O).
  return [...found].sort((a, b) => Number(/dump\.log$/.test(b)) - Number(/dump\.log$/.test(a)));
}

/**
 * Whether `real` (a real path) lies strictly inside one of `dirs`, compared
 * with the dirs' own real paths.
 */
async function inside(real: string, dirs: readonly string[]): Promise<boolean> {
  for (const d of dirs) {
    const rd = await Deno.realPath(d).catch(() => undefined);
    if (rd && real.startsWith(rd.endsWith("/") ? rd : `${rd}/`)) return true;
  }
  return false;
}

/** Reads at most the last `maxBytes` of a regular file. */
async function readTail(path: string, maxBytes: number): Promise<CriuLog | undefined> {
  const f = await Deno.open(path, { read: true });
  try {
    const st = await f.stat();
    if (!st.isFile) return undefined;
    const start = Math.max(0, st.size - maxBytes);
    await f.seek(start, Deno.SeekMode.Start);
    const buf = new Uint8Array(Math.min(st.size, maxBytes));
    let n = 0;
    while (n < buf.length) {
      const r = await f.read(buf.subarray(n));
      if (r === null) break;
      n += r;
    }
    let content = new TextDecoder().decode(buf.subarray(0, n));
    // A cut in the middle of a line: start at the next whole line.
    if (start > 0) content = content.slice(content.indexOf("\n") + 1);
    return { path, content, truncated: start > 0 };
  } finally {
    f.close();
  }
}

/**
 * Finds the CRIU log named in `text` and reads it, when it is a regular
 * `.log` file inside one of `dirs`; undefined when there is none (or it is
 * outside, unreadable, or gone).
 */
export async function readCriuLog(
  text: string,
  opts: { dirs: readonly string[]; maxBytes?: number },
): Promise<CriuLog | undefined> {
  for (const candidate of logPathsIn(text)) {
    if (candidate.split("/").includes("..")) continue;
    const real = await Deno.realPath(candidate).catch(() => undefined);
    if (!real || !real.endsWith(".log") || !(await inside(real, opts.dirs))) continue;
    const log = await readTail(real, opts.maxBytes ?? CRIU_LOG_MAX_BYTES).catch(() => undefined);
    if (log) return log;
  }
  return undefined;
}

/** Removes control characters (log text is untrusted) and collapses blanks. */
function clean(line: string): string {
  // deno-lint-ignore no-control-regex
  return line.replace(/[\u0000-\u001f\u007f-\u009f]/g, " ").replace(/\s+/g, " ").trim();
}

/**
 * `Error` lines CRIU logs and then carries on: without CAP_SYS_RESOURCE it
 * cannot raise its own RLIMIT_NOFILE, logs this, and dumps fine (checked with
 * CRIU 4.2.1 on this project's VM). Left out of messages while real errors exist.
 */
const NOISE = [/rlimit: Can't setup RLIMIT_NOFILE for self/];

/**
 * The `Error` lines of a CRIU log, in order, without timestamps, duplicates
 * and known noise: at most `maxLines`, at most `maxChars` characters in all.
 * Without any `Error` line, the last lines of the log.
 */
export function criuErrorLines(
  log: string,
  opts: { maxLines?: number; maxChars?: number } = {},
): string[] {
  const maxLines = opts.maxLines ?? 5;
  const maxChars = opts.maxChars ?? 1000;
  const all = log.split("\n").map((l) => clean(l.replace(/^\s*\(\s*[\d.]+\)\s*/, "")))
    .filter(Boolean);
  let picked = all.filter((l) => /\bError \(/.test(l));
  const real = picked.filter((l) => !NOISE.some((n) => n.test(l)));
  if (real.length) picked = real;
  if (!picked.length) picked = all.slice(-3);
  const out: string[] = [];
  let chars = 0;
  for (const l of new Set(picked)) {
    if (out.length === maxLines || chars >= maxChars) break;
    const line = l.length > maxChars - chars ? `${l.slice(0, maxChars - chars - 3)}...` : l;
    out.push(line);
    chars += line.length;
  }
  return out;
}

/** Known CRIU errors and what people should do about them. */
const HINTS: readonly { match: RegExp; hint: string }[] = [
  // Linux >= 6.16 refuses SO_PASSCRED/SO_PASSSEC on TCP/UDP sockets; CRIU < 4.2 fails on it
  // (upstream CRIU issues 2705 and 2718).
  {
    match: /sockets: Can't get \d+:\d+ opt: Operation not supported/,
    hint: "CRIU older than 4.2 cannot dump processes holding TCP or UDP sockets on Linux >= " +
      "6.16 (SO_PASSCRED/SO_PASSSEC restricted): install CRIU >= 4.2 on the node",
  },
  // CRIU reads the dumped task's rlimits (prlimit); for a task of another uid that needs
  // CAP_SYS_RESOURCE, which a runtime without it (this project's VM) lacks:
  // "Error (criu/cr-dump.c:389): Can't get rlimit 0: Operation not permitted".
  {
    match: /Can't get rlimit \d+: Operation not permitted/,
    hint: "the container runs as a non-root uid and the node's runtime lacks " +
      "CAP_SYS_RESOURCE, so CRIU cannot read its rlimits: run the container as uid 0 " +
      "or give the runtime (containerd, runc, CRIU) the CAP_SYS_RESOURCE capability",
  },
];

/** What to do about the given CRIU error lines, when they are a known case. */
export function criuErrorHint(lines: readonly string[]): string | undefined {
  return HINTS.find((h) => lines.some((l) => h.match.test(l)))?.hint;
}

/**
 * One message for people: the CRIU error lines (quoted, first: Events keep
 * 1024 characters), what they mean when known, and where the log was.
 */
export function describeCriuFailure(log: CriuLog, opts: { node?: string } = {}): string {
  const lines = criuErrorLines(log.content);
  const hint = criuErrorHint(lines);
  const where = `"${log.path}"${opts.node ? ` on node "${opts.node}"` : ""}`;
  return `CRIU failed: ${lines.map((l) => `"${l}"`).join("; ") || "(empty log)"}` +
    `${hint ? ` (${hint})` : ""}; CRIU log ${where}, kept with the operation ` +
    "(agent GetOperationLog, deno task status --logs)";
}
