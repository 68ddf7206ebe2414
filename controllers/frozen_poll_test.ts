import { assertEquals } from "@std/assert";
import { FROZEN_POLL_MS, operationPollMs } from "./frozen_poll.ts";

Deno.test("operationPollMs: the configured interval, capped while the source is frozen", () => {
  assertEquals(operationPollMs(1000, false), 1000);
  assertEquals(operationPollMs(1000, true), FROZEN_POLL_MS);
  assertEquals(operationPollMs(50, true), 50); // a faster setting stays
});
