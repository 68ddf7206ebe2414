import { assertEquals, assertStringIncludes } from "@std/assert";
import type * as k8s from "@kubernetes/client-node";
import type { CheckpointStorageClass } from "../api/mod.ts";
import { namespaceRefusal, podSpecRefusal } from "./pod_restore_policy.ts";

const cls = (allowed?: string[]): CheckpointStorageClass => ({
  metadata: { name: "shared" },
  spec: { provider: "minio", ...(allowed ? { restore: { allowedNamespaces: allowed } } : {}) },
});

Deno.test("namespaceRefusal: same namespace only, unless the class allows the target", () => {
  assertEquals(namespaceRefusal("shop", "shop", cls()), undefined);
  const r = namespaceRefusal("shop", "other", cls())!;
  assertStringIncludes(r, 'taken in namespace "shop"');
  assertStringIncludes(r, '"shared" lists it in spec.restore.allowedNamespaces');
  assertEquals(namespaceRefusal("shop", "recovery", cls(["recovery"])), undefined);
  assertStringIncludes(namespaceRefusal("shop", "other", cls(["recovery"]))!, '"other"');
  assertEquals(namespaceRefusal("shop", "any", cls(["*"])), undefined);
  assertStringIncludes(namespaceRefusal(undefined, "shop", cls(["*"]))!, "does not say");
  assertStringIncludes(namespaceRefusal("a", "b", undefined)!, '"(none)"');
});

const base: k8s.V1PodSpec = {
  serviceAccountName: "web",
  containers: [{ name: "app", image: "x", securityContext: { runAsUser: 0 } }],
  volumes: [{ name: "cfg", configMap: { name: "c" } }],
};

Deno.test("podSpecRefusal: what a restored pod may not gain, naming the field", () => {
  assertEquals(podSpecRefusal(base, "shop", "shop"), undefined);
  const cases: [(s: k8s.V1PodSpec) => void, string][] = [
    [(s) => s.hostNetwork = true, "spec.hostNetwork is true"],
    [(s) => s.hostPID = true, "spec.hostPID is true"],
    [(s) => s.hostIPC = true, "spec.hostIPC is true"],
    [
      (s) => s.volumes!.push({ name: "root", hostPath: { path: "/" } }),
      'spec.volumes["root"] is a hostPath ("/")',
    ],
    [
      (s) => s.containers[0].securityContext!.privileged = true,
      'spec.containers["app"].securityContext.privileged',
    ],
    [
      (s) => s.containers[0].securityContext!.allowPrivilegeEscalation = true,
      "allowPrivilegeEscalation",
    ],
    [
      (s) => s.containers[0].securityContext!.capabilities = { add: ["SYS_ADMIN"] },
      'capabilities.add asks for "SYS_ADMIN"',
    ],
    [(s) => s.containers[0].securityContext!.procMount = "Unmasked", 'procMount is "Unmasked"'],
    [(s) => s.containers[0].ports = [{ containerPort: 80, hostPort: 80 }], "hostPort 80"],
    [
      (s) =>
        s.initContainers = [{ name: "init", image: "x", securityContext: { privileged: true } }],
      'spec.initContainers["init"]',
    ],
  ];
  for (const [mutate, want] of cases) {
    const s = structuredClone(base);
    mutate(s);
    const r = podSpecRefusal(s, "shop", "shop");
    assertStringIncludes(r ?? "(allowed)", want);
    assertStringIncludes(r!, "The restored pod would gain privileges");
  }
  // Into another namespace: only its default service account.
  assertStringIncludes(
    podSpecRefusal(base, "shop", "recovery")!,
    'spec.serviceAccountName is "web"',
  );
  assertEquals(
    podSpecRefusal({ ...base, serviceAccountName: "default" }, "shop", "recovery"),
    undefined,
  );
  assertEquals(
    podSpecRefusal({ ...base, serviceAccountName: undefined }, "shop", "recovery"),
    undefined,
  );
  assertStringIncludes(podSpecRefusal(undefined, "a", "a")!, "no pod spec");
});
