import { assertRejects } from "@std/assert";
import { resolveStorageClass } from "./storage_class.ts";

const spec = (registry: Record<string, unknown>) =>
  JSON.stringify({ provider: "local", local: { path: "/tmp/lpm-never-used" }, registry });

Deno.test("resolveStorageClass refuses inline specs and credentials unless allowed", async () => {
  await assertRejects(
    () => resolveStorageClass({ name: "c", specJson: spec({ repository: "127.0.0.1:5000/x" }) }),
    Error,
    'Storage class "c": the request carries an inline spec or credentials',
  );
  await assertRejects(
    () => resolveStorageClass({ name: "c", credentials: { accessKeyId: "a" } }),
    Error,
    "inline spec or credentials",
  );
});

Deno.test("resolveStorageClass refuses a plain-HTTP registry off loopback", async () => {
  await assertRejects(
    () =>
      resolveStorageClass(
        { name: "c", specJson: spec({ repository: "reg.example.com/lpm", insecure: true }) },
        { allowInline: true },
      ),
    Error,
    'Storage class "c": Registry "reg.example.com" is marked insecure',
  );
});
