import { assertEquals, assertStringIncludes } from "@std/assert";
import type { PodMigration } from "../api/mod.ts";
import { main, preCopyDetail, timingSummary } from "./migrate.ts";

Deno.test("migrate: --pre-copy takes 1 to 16 rounds and is refused otherwise, before anything is created", async () => {
  for (const bad of ["0", "17", "two", "1.5"]) {
    assertEquals(await main(["app", "--pre-copy", bad, "--kubeconfig", "/nonexistent"]), 2, bad);
  }
});

Deno.test("migrate: pre-copy progress names each container's last round; the summary its time", () => {
  const pm = {
    metadata: { name: "m" },
    spec: { podName: "app", preCopy: { rounds: 3 } },
    status: {
      phase: "PreCopying",
      preCopy: {
        containers: [
          {
            name: "db",
            operationId: "u-pc2-db",
            rounds: [
              { round: 1, pages: 100, dirtyPages: 100, dirtyBytes: 409600, dumpMs: 5 },
              { round: 2, pages: 100, dirtyPages: 12, dirtyBytes: 3 * 1048576, dumpMs: 5 },
            ],
          },
          { name: "side", operationId: "u-pc1-side" },
        ],
      },
      timings: { preCopyMs: 4200, dumpMs: 500, downtimeMs: 1500, totalMs: 7000 },
    },
  } as PodMigration;
  assertEquals(preCopyDetail(pm), "db: round 2, 3.0 MiB changed; side: round 1");
  assertStringIncludes(timingSummary(pm), "pre-copy 4.20s (source running), dump 0.50s");
  assertEquals(preCopyDetail({ ...pm, status: {} } as PodMigration), "first round");
});

Deno.test("migrate: --ttl takes whole seconds, at least 5 with --wait, refused otherwise", async () => {
  for (const args of [["--ttl", "-1"], ["--ttl", "x"], ["--ttl", "2", "--wait"]]) {
    assertEquals(await main(["app", ...args, "--kubeconfig", "/nonexistent"]), 2, args.join(" "));
  }
});
