/**
 * The 10 Hz counter of the frozen-source tests (issue 15) and how its logs
 * are read and checked: every line with its CRI timestamp, a follower that
 * keeps a container's whole log across dropped streams, and the continuity
 * checks (no value printed twice, none missed, the restored pod's log
 * replays the source's). Used by tests/e2e_freeze_test.ts and the chaos
 * suite (tests/chaos/).
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import { assertEquals, assertGreater } from "@std/assert";
import type { KubeHttp } from "../kube/http.ts";
import { waitFor } from "../localenv/mod.ts";

/** The workload of issue 15: a sequence number ten times a second. */
export const COUNTER = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done"];

/** Where a counter's logs are read: an API connection and the namespace. */
export interface LogSource {
  http: KubeHttp;
  ns: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A pod of `containers`, each running {@linkcode COUNTER}, bound to `node`. */
export function counterPod(
  name: string,
  node: string,
  containers: string[],
  image: string,
): k8s.V1Pod {
  return {
    metadata: { name, labels: { app: name } },
    spec: {
      nodeName: node,
      automountServiceAccountToken: false,
      containers: containers.map((n) => ({ name: n, image, command: COUNTER })),
    },
  };
}

/** One line of a container's log as the API serves it with `timestamps=true`. */
export interface LogLine {
  /** The CRI log timestamp (RFC 3339, nanoseconds), as written by the node. */
  ts: string;
  text: string;
}

export function parseLine(raw: string): LogLine {
  const sp = raw.indexOf(" ");
  return sp < 0 ? { ts: "", text: raw } : { ts: raw.slice(0, sp), text: raw.slice(sp + 1) };
}

/** Epoch ms of an RFC 3339 time with any number of fractional digits. */
export function ms(ts: string): number {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(ts);
  if (!m) throw new Error(`Not an RFC 3339 time: "${ts}"`);
  return Date.parse(`${m[1]}.${(m[2] ?? "0").padEnd(3, "0").slice(0, 3)}${m[3]}`);
}

/** The counter values of `lines`, in order. */
export function numbers(lines: LogLine[]): number[] {
  return lines.filter((l) => /^\d+$/.test(l.text.trim())).map((l) => Number(l.text.trim()));
}

function logPath(ns: string, pod: string, container: string, follow: boolean): string {
  return `/api/v1/namespaces/${ns}/pods/${pod}/log?container=${encodeURIComponent(container)}` +
    `&timestamps=true${follow ? "&follow=true" : ""}`;
}

/** A container's whole log, read once. */
export async function readLog(c: LogSource, pod: string, container: string): Promise<LogLine[]> {
  const res = await c.http.request(logPath(c.ns, pod, container, false));
  const text = await res.text();
  if (!res.ok) {
    throw new Error(`Cannot read the log of "${c.ns}/${pod}/${container}": ${res.status} ${text}`);
  }
  return text.split("\n").filter(Boolean).map(parseLine);
}

/**
 * Follows a container's log (`follow=true`) from its first line until the
 * container stops or the pod is gone, keeping every line. A dropped stream is
 * read again from the start, and the lines already kept must come back
 * identical.
 */
export class LogFollower {
  /** Every line seen, in order. */
  readonly lines: LogLine[] = [];
  /** Lines that changed between two reads (must stay empty). */
  readonly problems: string[] = [];
  /** Resolves when the log can grow no more, or the follower was stopped. */
  readonly done: Promise<void>;
  /** True once the container stopped or the pod is gone. */
  ended = false;
  #abort = new AbortController();

  constructor(
    private readonly c: LogSource,
    readonly pod: string,
    readonly container: string,
  ) {
    this.done = this.#run();
  }

  /** The counter values seen so far. */
  get values(): number[] {
    return numbers(this.lines);
  }

  /** Stops following. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.done;
  }

  async #read(follow: boolean): Promise<number> {
    const res = await this.c.http.request(
      logPath(this.c.ns, this.pod, this.container, follow),
      { signal: this.#abort.signal },
    );
    if (!res.ok) {
      await res.body?.cancel();
      return res.status;
    }
    let pos = 0;
    let buf = "";
    for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = parseLine(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        const had = this.lines[pos];
        if (!had) this.lines.push(line);
        else if (had.ts !== line.ts || had.text !== line.text) {
          this.problems.push(
            `line ${pos + 1} read as "${had.ts} ${had.text}", later as ` +
              `"${line.ts} ${line.text}"`,
          );
        }
        pos++;
      }
    }
    return res.status;
  }

  async #stopped(): Promise<boolean> {
    const res = await this.c.http.request(
      `/api/v1/namespaces/${this.c.ns}/pods/${this.pod}`,
      { signal: this.#abort.signal },
    );
    if (res.status === 404) {
      await res.body?.cancel();
      return true;
    }
    const pod = await res.json() as k8s.V1Pod;
    const s = pod.status?.containerStatuses?.find((x) => x.name === this.container);
    return Boolean(s?.state?.terminated);
  }

  async #run(): Promise<void> {
    while (!this.#abort.signal.aborted) {
      try {
        if (await this.#read(true) === 404) break;
        // The stream ended: the container stopped, or the connection dropped.
        if (await this.#stopped()) {
          await this.#read(false).catch(() => {});
          break;
        }
      } catch {
        if (this.#abort.signal.aborted) return;
      }
      await sleep(200);
    }
    if (!this.#abort.signal.aborted) this.ended = true;
  }
}

export async function counted(f: LogFollower, n: number): Promise<void> {
  await waitFor(() => f.values.length >= n, {
    what: `container "${f.container}" of "${f.pod}" to log ${n} values`,
    timeoutMs: 60_000,
  });
}

/** Throws unless `v` is from, from+1, from+2... with no gap and no duplicate. */
export function assertConsecutive(v: number[], what: string, from = 1): void {
  for (let i = 0; i < v.length; i++) {
    if (v[i] !== from + i) {
      throw new Error(
        `${what}: value #${i + 1} is ${v[i]}, expected ${from + i} (around it: ${
          v.slice(Math.max(0, i - 3), i + 4).join(", ")
        })`,
      );
    }
  }
}

/** What a checked migration of one container looked like. */
export interface Continuity {
  /** The source's last value. */
  n: number;
  lastSource: LogLine;
  firstNew: LogLine;
}

/**
 * The strict check: the source's whole log (followed until it stopped) is
 * the restored log's replayed prefix, and the restored pod's first new value
 * is the source's last + 1.
 */
export function assertContinues(source: LogLine[], restored: LogLine[], what: string): Continuity {
  const src = numbers(source);
  assertGreater(src.length, 5, `${what}: the source logged only ${src.length} values`);
  assertConsecutive(src, `${what}: the source's log`);
  const n = src.at(-1)!;
  let k = 0;
  while (
    k < source.length && k < restored.length && source[k].ts === restored[k].ts &&
    source[k].text === restored[k].text
  ) k++;
  if (k < source.length) {
    const after = source.slice(k).map((l) => l.text);
    throw new Error(
      `${what}: the restored pod's log replays the source's log only up to line ${k} ` +
        `(${restored[k - 1]?.text ?? "nothing"}), but the source logged ${source.length} lines, ` +
        `up to ${n}: the source ran past its final checkpoint and printed ` +
        `${after.slice(0, 8).join(", ")}${after.length > 8 ? ` ... (${after.length} lines)` : ""}` +
        ` after it; the restored pod then printed ${
          numbers(restored.slice(k, k + 5)).join(", ")
        } again`,
    );
  }
  const fresh = restored.slice(k);
  const next = numbers(fresh);
  assertGreater(next.length, 0, `${what}: the restored pod printed nothing new after the replay`);
  assertEquals(
    next[0],
    n + 1,
    `${what}: the source's log ends at ${n}; the restored pod's first new value is ${next[0]}`,
  );
  assertConsecutive([...src, ...next], `${what}: the source's values then the restored pod's`);
  return { n, lastSource: source.at(-1)!, firstNew: fresh[0] };
}
