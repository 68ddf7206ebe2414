/**
 * The controller's manifests apply on the real API server, and its RBAC is
 * what it needs and no more (checked with `kubectl auth can-i` as its
 * ServiceAccount).
 */
import { assertEquals, assertStringIncludes } from "@std/assert";
import { needing, requirePart } from "../testing/env.ts";
import { kubectl, tool } from "../localenv/mod.ts";

const test = needing({ uses: ["kube"] });

const ROOT = new URL("../", import.meta.url).pathname;
const SA = "system:serviceaccount:lpm-system:lpm-controller";

/** `kubectl auth can-i` as the controller: it answers "yes" or "no" (exit 1) on stdout. */
async function can(
  kubeconfig: string,
  verb: string,
  resource: string,
  ns?: string,
): Promise<boolean> {
  const args = [
    "auth",
    "can-i",
    verb,
    resource,
    `--as=${SA}`,
    ...(ns ? ["-n", ns] : ["--all-namespaces"]),
  ];
  const out = await new Deno.Command(tool("kubectl"), {
    args: [`--kubeconfig=${kubeconfig}`, ...args],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const answer = new TextDecoder().decode(out.stdout).trim();
  if (answer !== "yes" && answer !== "no") {
    throw new Error(
      `kubectl auth can-i ${verb} ${resource}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return answer === "yes";
}

test("config/: the whole kustomization (agent + controller) passes server-side validation", async () => {
  const { kubeconfig } = requirePart("kube");
  // A server dry run creates no namespace: the ones it fills must exist.
  await kubectl(kubeconfig, ["apply", "-f", `${ROOT}config/controller/pki.yaml`]);
  const out = await kubectl(kubeconfig, ["apply", "-k", `${ROOT}config`, "--dry-run=server"]);
  assertStringIncludes(out, "deployment.apps/lpm-controller");
  assertStringIncludes(out, "daemonset.apps/lpm-agent");
  assertStringIncludes(out, "service/lpm-controller-metrics");
  assertStringIncludes(out, "service/lpm-controller-webhook");
});

test("config/controller: RBAC grants what the controller needs and nothing more", async () => {
  const { kubeconfig } = requirePart("kube");
  await kubectl(kubeconfig, [
    "apply",
    "-f",
    `${ROOT}config/agent/namespace.yaml`,
    "-f",
    `${ROOT}config/controller/rbac.yaml`,
    "-f",
    `${ROOT}config/controller/pki.yaml`,
  ]);
  const allowed: [string, string, string?][] = [
    ["watch", "podmigrations.lpm.my.domain"],
    ["patch", "podmigrations.lpm.my.domain/status"],
    ["create", "podcheckpoints.lpm.my.domain"],
    ["create", "pods"],
    ["delete", "pods"],
    ["watch", "nodes"],
    ["get", "replicasets.apps"],
    ["create", "events"],
    ["get", "secrets", "lpm-system"],
    ["create", "secrets", "lpm-pki"],
    ["update", "secrets", "lpm-pki"],
    ["update", "leases.coordination.k8s.io", "lpm-system"],
    ["create", "validatingwebhookconfigurations.admissionregistration.k8s.io"],
  ];
  const denied: [string, string, string?][] = [
    ["get", "secrets"],
    ["list", "secrets", "lpm-system"],
    ["list", "secrets", "lpm-pki"],
    ["delete", "secrets", "lpm-pki"],
    ["delete", "nodes"],
    ["update", "nodes"],
    ["create", "clusterrolebindings.rbac.authorization.k8s.io"],
    ["delete", "deployments.apps"],
    ["update", "leases.coordination.k8s.io", "kube-system"],
    ["delete", "validatingwebhookconfigurations.admissionregistration.k8s.io"],
  ];
  for (const [verb, res, ns] of allowed) {
    assertEquals(await can(kubeconfig, verb, res, ns), true, `${verb} ${res}`);
  }
  for (const [verb, res, ns] of denied) {
    assertEquals(await can(kubeconfig, verb, res, ns), false, `${verb} ${res}`);
  }
});
