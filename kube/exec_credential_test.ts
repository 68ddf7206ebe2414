import { assertEquals, assertRejects, assertThrows } from "@std/assert";
import { execTokenSource, parseExecCredential } from "./exec_credential.ts";

Deno.test("parseExecCredential: the token and its expiry; a certificate-only answer refused", () => {
  const at = "2030-01-01T00:00:00Z";
  assertEquals(
    parseExecCredential(JSON.stringify({
      kind: "ExecCredential",
      status: { token: "tok", expirationTimestamp: at },
    })),
    { token: "tok", expiresMs: Date.parse(at) },
  );
  assertEquals(
    parseExecCredential('{"kind":"ExecCredential","status":{"token":"t"}}').expiresMs,
    Infinity,
  );
  assertThrows(() => parseExecCredential("nope"), Error, "not JSON");
  assertThrows(
    () =>
      parseExecCredential(
        '{"kind":"ExecCredential","status":{"clientCertificateData":"x","clientKeyData":"y"}}',
      ),
    Error,
    "it gave a client certificate",
  );
});

Deno.test("execTokenSource: runs the real plugin with its env and KUBERNETES_EXEC_INFO, caches the token", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const plugin = `${dir}/plugin.sh`;
    // A real plugin: counts its runs, echoes what it was given.
    Deno.writeTextFileSync(
      plugin,
      `#!/bin/sh
echo run >> "${dir}/runs"
info=$(printf %s "$KUBERNETES_EXEC_INFO" | tr -d '"{}:, ' )
printf '{"kind":"ExecCredential","status":{"token":"%s-%s-%s"}}' "$1" "$EXTRA" "$info"
`,
    );
    Deno.chmodSync(plugin, 0o755);
    const token = execTokenSource({
      command: plugin,
      args: ["arg1"],
      env: [{ name: "EXTRA", value: "env1" }],
    });
    const t = await token();
    assertEquals(t.startsWith("arg1-env1-apiVersionclient.authentication.k8s.io/v1"), true, t);
    assertEquals(await token(), t);
    assertEquals(Deno.readTextFileSync(`${dir}/runs`).trim().split("\n").length, 1);
    const failing = execTokenSource({ command: `${dir}/missing` });
    await assertRejects(() => failing(), Error);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
