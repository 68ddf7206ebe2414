import { assertEquals, assertMatch } from "@std/assert";
import { Logger } from "./log.ts";

Deno.test("Logger: one JSON line per call with ts, level, msg, fixed and call fields", () => {
  const lines: string[] = [];
  const log = new Logger({ component: "lpm-agent" }, "info", (l) => lines.push(l)).with({
    operation: "op1",
  });
  log.debug("dropped below the level");
  log.warn("cannot keep the CRIU log", { error: new Error("disk full"), n: 2 });
  assertEquals(lines.length, 1);
  const rec = JSON.parse(lines[0]);
  assertMatch(rec.ts, /^\d{4}-\d\d-\d\dT/);
  assertEquals(
    { ...rec, ts: undefined },
    {
      ts: undefined,
      level: "warn",
      msg: "cannot keep the CRIU log",
      component: "lpm-agent",
      operation: "op1",
      error: "disk full",
      n: 2,
    },
  );
});
