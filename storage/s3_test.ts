import { assertEquals } from "@std/assert";
import { requirePart } from "../testing/env.ts";
import { isPlainHttpLoopback } from "./_endpoint.ts";
import { registerConformance } from "../testing/storage_conformance.ts";
import { openBucketFixture } from "../testing/storage_fixtures.ts";

registerConformance({
  name: "s3",
  open: () => openBucketFixture("s3", requirePart("minio")),
  needs: { uses: ["minio"] },
});

Deno.test("s3: payload signing is skipped only for plain-HTTP loopback endpoints", () => {
  assertEquals(isPlainHttpLoopback("http://127.0.0.1:9000"), true);
  assertEquals(isPlainHttpLoopback("http://localhost:9000"), true);
  assertEquals(isPlainHttpLoopback("http://[::1]:9000"), true);
  assertEquals(isPlainHttpLoopback("https://127.0.0.1:9000"), false);
  assertEquals(isPlainHttpLoopback("http://10.0.0.5:9000"), false);
  assertEquals(isPlainHttpLoopback("http://minio.example:9000"), false);
  assertEquals(isPlainHttpLoopback(undefined), false);
});
