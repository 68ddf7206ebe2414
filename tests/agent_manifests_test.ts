/**
 * The agent's manifests against the real API server: the whole kustomization
 * passes a server-side dry run (the DaemonSet is validated by the API server
 * but not created), the RBAC objects are applied for real, and
 * `kubectl auth can-i` proves the ServiceAccount can do what the agent needs
 * and nothing more (no Secrets outside lpm-system, no pod deletes).
 * @module
 */
import { assertEquals, assertStringIncludes } from "@std/assert";
import { needing, requirePart } from "../testing/env.ts";
import { kubectl } from "../localenv/mod.ts";

const test = needing({ uses: ["kube"] });

const DIR = new URL("../config/agent/", import.meta.url).pathname;
const SA = "system:serviceaccount:lpm-system:lpm-agent";

async function canI(kc: string, args: string[]): Promise<string> {
  // "no" exits 1, which kubectl() turns into an error carrying the output.
  return await kubectl(kc, ["auth", "can-i", "--as", SA, ...args]).catch((e) =>
    String((e as Error).message)
  );
}

test("agent manifests: server dry-run of the kustomization, real RBAC, least privilege", async () => {
  const { kubeconfig: kc } = requirePart("kube");
  const nsExisted = await kubectl(kc, ["get", "namespace", "lpm-system"]).then(
    () => true,
    () => false,
  );
  await kubectl(kc, ["apply", "-f", `${DIR}namespace.yaml`, "-f", `${DIR}rbac.yaml`]);
  try {
    const dry = await kubectl(kc, ["apply", "-k", DIR, "--dry-run=server"]);
    assertStringIncludes(dry, "daemonset.apps/lpm-agent");
    assertStringIncludes(dry, "(server dry run)");
    const rendered = await kubectl(kc, ["kustomize", DIR]);
    for (
      const forbidden of ["cluster-admin", "hostPath:\n            path: /\n", "hostPID: true"]
    ) {
      assertEquals(rendered.includes(forbidden), false, `manifests contain "${forbidden}"`);
    }

    const expectations: [string[], boolean][] = [
      [["get", "nodes"], true],
      [["create", "nodes", "--subresource=checkpoint"], true],
      // No way into other workloads: no kubelet proxy (exec, attach, logs, run), no exec.
      [["create", "nodes", "--subresource=proxy"], false],
      [["get", "nodes", "--subresource=proxy"], false],
      [["create", "pods", "--subresource=exec", "-n", "default"], false],
      [["create", "pods", "--subresource=attach", "-n", "default"], false],
      [["get", "pods", "--subresource=log", "-n", "default"], false],
      [["get", "checkpointstorageclasses.lpm.my.domain"], true],
      [["get", "secrets", "-n", "lpm-system"], true],
      [["get", "secrets", "-n", "default"], false],
      // lpm's CA key (config/controller/pki.yaml) is out of the agent's reach.
      [["get", "secrets", "-n", "lpm-pki"], false],
      [["list", "secrets", "--all-namespaces"], false],
      [["list", "secrets", "-n", "lpm-system"], false],
      [["delete", "pods", "-n", "default"], false],
      [["list", "pods", "--all-namespaces"], false],
      [["delete", "nodes"], false],
      [["update", "nodes"], false],
      [["create", "pods", "-n", "default"], false],
      [["delete", "checkpointstorageclasses.lpm.my.domain"], false],
    ];
    const wrong: string[] = [];
    for (const [args, want] of expectations) {
      const out = await canI(kc, args);
      const got = /(^|\n)yes\b/.test(out.trim());
      if (got !== want) {
        wrong.push(`can-i ${args.join(" ")}: got ${got}, want ${want} (${out.trim().slice(-200)})`);
      }
    }
    assertEquals(wrong, []);
  } finally {
    if (!nsExisted) {
      // Only what this test made: in the shared environment the running agents use this RBAC.
      await kubectl(kc, ["delete", "--ignore-not-found", "-f", `${DIR}rbac.yaml`]).catch(() => {});
      // Waits: a namespace still terminating would refuse the next test's objects.
      await kubectl(kc, ["delete", "namespace", "lpm-system"]).catch(() => {});
    }
  }
});
