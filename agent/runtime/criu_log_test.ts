import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import {
  criuErrorHint,
  criuErrorLines,
  CriuFailureError,
  criuLogOf,
  describeCriuFailure,
  logPathsIn,
  readCriuLog,
} from "./criu_log.ts";

const SOCKETS_LOG = `(00.000010) Version: 4.1.1 (gitid 0)
(00.004000) Warn  (criu/kerndat.c:100): something harmless
(00.012345) Error (criu/sockets.c:628): sockets: Can't get 1:16 opt: Operation not supported
(00.012346) Error (criu/sockets.c:628): sockets: Can't get 1:34 opt: Operation not supported
(00.012346) Error (criu/sockets.c:628): sockets: Can't get 1:34 opt: Operation not supported
(00.020000) Error (criu/cr-dump.c:1681): Dump files (pid: 42) failed with -1
(00.030000) Unlock network
`;

// Excerpt of CRIU 4.2.1's dump.log for a uid-1000 process on this VM (no CAP_SYS_RESOURCE).
const RLIMIT_LOG =
  `(00.078370) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted
(00.084100) Dumping core (pid: 27446)
(00.084210) Error (criu/cr-dump.c:389): Can't get rlimit 0: Operation not permitted
(00.084213) Error (criu/cr-dump.c:1584): Dump core (pid: 27446) failed with -1
(00.084665) Error (criu/cr-dump.c:1975): Dumping FAILED.
`;

const CONTAINERD_500 =
  "checkpointing of default/counter/counter failed: rpc error: code = Unknown desc = failed to checkpoint: criu failed: type NOTIFY errno 0 path= /run/containerd/io.containerd.runtime.v2.task/k8s.io/0123abcd/criu-dump.log: unknown";

Deno.test("criu_log: the log path is found in containerd's error text", () => {
  assertEquals(logPathsIn(CONTAINERD_500), [
    "/run/containerd/io.containerd.runtime.v2.task/k8s.io/0123abcd/criu-dump.log",
  ]);
  assertEquals(logPathsIn('log file: "/a/b/dump.log" and /x/other.log'), [
    "/a/b/dump.log",
    "/x/other.log",
  ]);
  assertEquals(logPathsIn("no path here, nor /a/b.logger"), []);
});

Deno.test("criu_log: Error lines without timestamps, duplicates, control characters; bounded", () => {
  assertEquals(criuErrorLines(SOCKETS_LOG), [
    "Error (criu/sockets.c:628): sockets: Can't get 1:16 opt: Operation not supported",
    "Error (criu/sockets.c:628): sockets: Can't get 1:34 opt: Operation not supported",
    "Error (criu/cr-dump.c:1681): Dump files (pid: 42) failed with -1",
  ]);
  const many = Array.from({ length: 50 }, (_, i) => `(0.1) Error (x.c:${i}): ${"y".repeat(400)}`)
    .join("\n");
  const lines = criuErrorLines(many);
  assert(lines.length <= 5);
  assert(lines.join("").length <= 1000, `${lines.join("").length}`);
  assertEquals(criuErrorLines("(0.1) Error (a.c:1): bad\u001b[31m\u0007 thing"), [
    "Error (a.c:1): bad [31m thing",
  ]);
  // The real CRIU log of a uid-1000 process on this VM: the RLIMIT_NOFILE line is noise.
  assertEquals(criuErrorLines(RLIMIT_LOG), [
    "Error (criu/cr-dump.c:389): Can't get rlimit 0: Operation not permitted",
    "Error (criu/cr-dump.c:1584): Dump core (pid: 27446) failed with -1",
    "Error (criu/cr-dump.c:1975): Dumping FAILED.",
  ]);
  assertStringIncludes(criuErrorHint(criuErrorLines(RLIMIT_LOG))!, "non-root uid");
  assertEquals(
    criuErrorLines("(0.1) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: x"),
    ["Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: x"],
    "alone, it is still shown",
  );
  // No Error line: the end of the log says most.
  assertEquals(criuErrorLines("a\nb\nc\nd\n"), ["b", "c", "d"]);
});

Deno.test("criu_log: known errors get a hint people can act on", () => {
  assertStringIncludes(criuErrorHint(criuErrorLines(SOCKETS_LOG))!, "install CRIU >= 4.2");
  const rlimit = criuErrorHint([
    "Error (criu/proc_parse.c:1): Can't get rlimit 0: Operation not permitted",
  ]);
  assertStringIncludes(rlimit!, "non-root uid");
  assertStringIncludes(rlimit!, "CAP_SYS_RESOURCE");
  assertEquals(criuErrorHint(["Error (criu/x.c:1): something else"]), undefined);
  // CRIU logs this as an Error and carries on (no CAP_SYS_RESOURCE): not a cause, no hint.
  assertEquals(
    criuErrorHint([
      "Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: " +
      "Operation not permitted",
    ]),
    undefined,
  );
});

Deno.test("criu_log: reads only .log files inside the runtime dirs, and at most the tail", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lpm-criu-log-" });
  const outside = await Deno.makeTempDir({ prefix: "lpm-criu-outside-" });
  try {
    const runtime = `${dir}/runtime/k8s.io/abc`;
    await Deno.mkdir(runtime, { recursive: true });
    await Deno.writeTextFile(`${runtime}/criu-dump.log`, SOCKETS_LOG);
    const dirs = [`${dir}/runtime`];
    const log = await readCriuLog(`failed path= ${runtime}/criu-dump.log: unknown`, { dirs });
    assertEquals(log?.content, SOCKETS_LOG);
    assertEquals(log?.truncated, false);

    // Outside the runtime dirs, through "..", through a symlink, or not a .log: not read.
    await Deno.writeTextFile(`${outside}/secret.log`, "secret");
    assertEquals(await readCriuLog(`path= ${outside}/secret.log`, { dirs }), undefined);
    assertEquals(
      await readCriuLog(`path= ${dir}/runtime/../../${outside}/secret.log`, { dirs }),
      undefined,
    );
    await Deno.symlink(`${outside}/secret.log`, `${runtime}/evil.log`);
    assertEquals(await readCriuLog(`path= ${runtime}/evil.log`, { dirs }), undefined);
    await Deno.mkdir(`${runtime}/dir.log`);
    assertEquals(await readCriuLog(`path= ${runtime}/dir.log`, { dirs }), undefined);
    assertEquals(await readCriuLog(`path= ${runtime}/missing.log`, { dirs }), undefined);

    // Bounded: the last bytes, starting at a whole line.
    await Deno.writeTextFile(`${runtime}/big.log`, "x".repeat(5000) + "\n" + SOCKETS_LOG);
    const tail = await readCriuLog(`path= ${runtime}/big.log`, { dirs, maxBytes: 1000 });
    assertEquals(tail?.truncated, true);
    assert(tail!.content.length <= 1000);
    assert(!tail!.content.includes("xxx"));
    assertStringIncludes(tail!.content, "Dump files (pid: 42) failed");
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("criu_log: the message puts the CRIU lines first and says where the log is", () => {
  const msg = describeCriuFailure({
    path: "/run/x/criu-dump.log",
    content: SOCKETS_LOG,
    truncated: false,
  }, {
    node: "node-a",
  });
  assert(msg.startsWith('CRIU failed: "Error (criu/sockets.c:628)'), msg);
  assertStringIncludes(msg, "install CRIU >= 4.2");
  assertStringIncludes(msg, '"/run/x/criu-dump.log" on node "node-a"');
  const err = new Error("wrapped", {
    cause: new CriuFailureError("inner", { path: "/p.log", content: "c", truncated: false }),
  });
  assertEquals(criuLogOf(err)?.path, "/p.log");
  assertEquals(criuLogOf(new Error("plain")), undefined);
});
