/**
 * Smoke tests: the control plane is real. CRDs and examples apply with
 * kubectl, RBAC and authentication are enforced, and the garbage collector of
 * kube-controller-manager deletes an owned object when its owner goes.
 */
import { assert, assertEquals, assertRejects, assertStringIncludes } from "@std/assert";
import { needing, requirePart } from "../testing/env.ts";
import { kubectl, startEnvironment, waitFor } from "../localenv/mod.ts";

const test = needing({ starts: ["kube"] });
const kubeTest = needing({ uses: ["kube"] });

const ROOT = new URL("../", import.meta.url).pathname;

test("kube: kubectl apply -k crds/ and -f examples/ succeed on the real API server", async () => {
  // A private API server without lpm running: the shared environment's
  // controller would act on the example objects.
  const env = await startEnvironment({ parts: ["kube"] });
  try {
    const kubeconfig = env.info.kube!.kubeconfig;
    const crds = await kubectl(kubeconfig, [
      "apply",
      "--server-side",
      "--force-conflicts",
      "-k",
      `${ROOT}crds/`,
    ]);
    assert(crds.trim().length > 0, "crds/ applied nothing");
    // The examples' Secrets live in lpm-system, which an lpm install creates.
    await kubectl(kubeconfig, ["apply", "-f", `${ROOT}config/agent/namespace.yaml`]);
    const examples = await kubectl(kubeconfig, ["apply", "-f", `${ROOT}examples/`]);
    assert(examples.trim().length > 0, "examples/ applied nothing");
    const stored = await kubectl(kubeconfig, ["get", "-f", `${ROOT}examples/`, "-o", "name"]);
    assertEquals(
      stored.trim().split("\n").length,
      examples.trim().split("\n").length,
      "every example is stored",
    );
  } finally {
    await env.stop();
  }
});

kubeTest("kube: anonymous requests are refused (authentication is on)", async () => {
  const { server, caCert } = requirePart("kube");
  const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(caCert)] });
  try {
    const r = await fetch(`${server}/api/v1/namespaces`, { client });
    await r.body?.cancel();
    assertEquals(r.status, 401);
  } finally {
    client.close();
  }
});

kubeTest("kube: a user without RBAC grants is forbidden (authorization is on)", async () => {
  const { kubeconfig } = requirePart("kube");
  const err = await assertRejects(() =>
    kubectl(kubeconfig, ["get", "secrets", "-A", "--as=nobody-in-particular"])
  );
  assertStringIncludes(err.message, "forbidden");
});

kubeTest("kube: deleting an owner garbage-collects the object it owns", async () => {
  const { kubeconfig } = requirePart("kube");
  const ns = `gc-${crypto.randomUUID().slice(0, 8)}`;
  await kubectl(kubeconfig, ["create", "namespace", ns]);
  try {
    await kubectl(kubeconfig, ["-n", ns, "create", "configmap", "owner", "--from-literal=a=1"]);
    const uid = (await kubectl(kubeconfig, [
      "-n",
      ns,
      "get",
      "configmap",
      "owner",
      "-o",
      "jsonpath={.metadata.uid}",
    ])).trim();
    const owned = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name: "owned",
        namespace: ns,
        ownerReferences: [{ apiVersion: "v1", kind: "ConfigMap", name: "owner", uid }],
      },
      data: { b: "2" },
    };
    await kubectl(kubeconfig, ["apply", "-f", "-"], JSON.stringify(owned));
    await kubectl(kubeconfig, ["-n", ns, "delete", "configmap", "owner"]);
    await waitFor(async () => {
      const out = await kubectl(kubeconfig, [
        "-n",
        ns,
        "get",
        "configmap",
        "owned",
        "--ignore-not-found",
        "-o",
        "name",
      ]);
      return out.trim() === "";
    }, {
      what: "the garbage collector to delete the owned ConfigMap",
      timeoutMs: 60_000,
      intervalMs: 500,
    });
  } finally {
    await kubectl(kubeconfig, ["delete", "namespace", ns, "--wait=false"]);
  }
});
