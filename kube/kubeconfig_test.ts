import { assertEquals, assertThrows } from "@std/assert";
import { currentContext, KubeConfigFile } from "./kubeconfig.ts";

const DOC = {
  "current-context": "dev",
  contexts: [
    { name: "other", context: { cluster: "c2", user: "u2" } },
    { name: "dev", context: { cluster: "c1", user: "u1" } },
  ],
  clusters: [
    {
      name: "c1",
      cluster: { server: "https://127.0.0.1:6443", "certificate-authority": "ca.crt" },
    },
    { name: "c2", cluster: { server: "https://other" } },
  ],
  users: [
    { name: "u1", user: { "client-certificate": "/abs/u.crt", "client-key-data": "a2V5" } },
    { name: "u2", user: { token: "t" } },
  ],
};

Deno.test("currentContext: the current context's cluster and user, files resolved against the dir", () => {
  const { cluster, user } = currentContext(DOC, "/etc/kube");
  assertEquals(cluster, {
    name: "c1",
    server: "https://127.0.0.1:6443",
    caData: undefined,
    caFile: "/etc/kube/ca.crt",
  });
  assertEquals(user.certFile, "/abs/u.crt");
  assertEquals(user.keyData, "a2V5");
  assertEquals(user.token, undefined);
});

Deno.test("currentContext: refuses what lpm cannot honour, naming the field", () => {
  const bad = (patch: (d: typeof DOC) => void) => {
    const d = structuredClone(DOC);
    patch(d);
    return d;
  };
  assertThrows(
    () => currentContext(bad((d) => (d["current-context"] = "")), "/"),
    Error,
    "current-context is not set",
  );
  assertThrows(
    () => currentContext(bad((d) => (d["current-context"] = "nope")), "/"),
    Error,
    'no contexts entry named "nope"',
  );
  assertThrows(
    () =>
      currentContext(
        bad((
          d,
        ) => ((d.clusters[0].cluster as Record<string, unknown>)["insecure-skip-tls-verify"] =
          true)
        ),
        "/",
      ),
    Error,
    "clusters[c1].cluster.insecure-skip-tls-verify is not supported",
  );
  assertThrows(
    () =>
      currentContext(
        bad((d) => ((d.users[0].user as Record<string, unknown>)["auth-provider"] = {})),
        "/",
      ),
    Error,
    "users[u1].user.auth-provider is not supported",
  );
  // The same field on a user no context uses is not read.
  currentContext(
    bad((d) => ((d.users[1].user as Record<string, unknown>)["auth-provider"] = {})),
    "/",
  );
});

Deno.test("KubeConfigFile.fromFile: YAML on disk, an exec plugin kept, a bad file named", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const doc = structuredClone(DOC) as Record<string, unknown>;
    (doc.users as { user: Record<string, unknown> }[])[0].user = {
      exec: { command: "get-token", args: ["--x"], apiVersion: "client.authentication.k8s.io/v1" },
    };
    Deno.writeTextFileSync(`${dir}/config`, JSON.stringify(doc)); // JSON is YAML
    const kc = KubeConfigFile.fromFile(`${dir}/config`);
    assertEquals(kc.getCurrentCluster().caFile, `${dir}/ca.crt`);
    assertEquals(kc.getCurrentUser().exec?.command, "get-token");
    Deno.writeTextFileSync(`${dir}/bad`, "clusters: [");
    assertThrows(() => KubeConfigFile.fromFile(`${dir}/bad`), Error, `kubeconfig ${dir}/bad`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("KubeConfigFile.inCluster: the service account's token file and CA", () => {
  const prev = Deno.env.get("KUBERNETES_SERVICE_HOST");
  Deno.env.set("KUBERNETES_SERVICE_HOST", "fd00::1");
  try {
    const kc = KubeConfigFile.inCluster("/sa");
    assertEquals(kc.getCurrentCluster().server, "https://[fd00::1]:443");
    assertEquals(kc.getCurrentCluster().caFile, "/sa/ca.crt");
    assertEquals(kc.getCurrentUser().authProvider?.config?.tokenFile, "/sa/token");
  } finally {
    if (prev === undefined) Deno.env.delete("KUBERNETES_SERVICE_HOST");
    else Deno.env.set("KUBERNETES_SERVICE_HOST", prev);
  }
});
