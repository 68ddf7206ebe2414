/**
 * PodRestore authorization against the real API server and a real store: a
 * checkpoint restores only into the namespace it was taken in unless its
 * class allows the target namespace, and a pod spec that would gain
 * privileges is refused, both before anything is imported. The metadata is
 * written straight into the store, as anyone with write access to a shared
 * bucket could. (A private control plane: the shared environment's own
 * controller would race the in-process manager.)
 */
import * as k8s from "@kubernetes/client-node";
import { envTest } from "../testing/env.ts";
import "../kube/http1.ts";
import { assertEquals, assertStringIncludes } from "@std/assert";
import { createNamespace, startEnvironment, waitFor } from "../localenv/mod.ts";
import { ScriptedAgents } from "../testing/scripted_agent.ts";
import { startManager } from "../controllers/manager.ts";
import { LpmClient } from "../kube/lpm_client.ts";
import { Logger } from "../base/log.ts";
import type { CheckpointStorageClass, PodRestore } from "../api/mod.ts";
import { createStore } from "../storage/mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const quiet = new Logger({}, "error", () => {});

function metadata(ns: string, spec: k8s.V1PodSpec, id = "x1") {
  return {
    operationId: "op-1",
    namespace: ns,
    pod: "db",
    container: "app",
    node: "node-x",
    architecture: "amd64",
    archive: {
      storageClassName: "shared",
      key: `${ns}/db/${id}/app.tar`,
      sha256: "0".repeat(64),
      size: 1024,
    },
    runtime: { name: "containerd", version: "2.2.9" },
    sourcePod: { apiVersion: "v1", kind: "Pod", metadata: { name: "db", namespace: ns }, spec },
  };
}

function classBody(dir: string): CheckpointStorageClass {
  return {
    apiVersion: "lpm.my.domain/v1",
    kind: "CheckpointStorageClass",
    metadata: { name: "shared" },
    spec: {
      provider: "local",
      local: { path: dir },
      registry: { repository: "127.0.0.1:5000/lpm", insecure: true },
    },
  };
}

envTest({ starts: ["kube"] }, {
  name: "PodRestore: other namespaces and privilege-gaining pod specs are refused before import",
  ...opts,
  async fn() {
    const env = await startEnvironment({ parts: ["kube"] });
    const dir = await Deno.makeTempDir({ prefix: "lpm-restore-policy-" });
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(env.info.kube!.kubeconfig);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const lpm = new LpmClient(kc);
    const mgr = await startManager({
      kubeConfig: kc,
      agents: new ScriptedAgents(),
      pollMs: 100,
      logger: quiet,
    });
    const store = createStore({ provider: "local", local: { path: dir } });
    try {
      await createNamespace(core, "shop");
      await createNamespace(core, "recovery");
      await lpm.create("checkpointstorageclasses", "", classBody(dir));
      const put = async (key: string, body: unknown) =>
        await store.put(key, new Blob([JSON.stringify(body)]).stream());
      const plain: k8s.V1PodSpec = {
        serviceAccountName: "db",
        containers: [{ name: "app", image: "busybox" }],
      };
      await put("shop/db/x1/app.checkpoint.json", metadata("shop", plain));
      const privileged = structuredClone(plain);
      privileged.containers[0].securityContext = { privileged: true };
      await put("shop/db/x2/app.checkpoint.json", metadata("shop", privileged, "x2"));
      const hostPath = {
        ...structuredClone(plain),
        volumes: [{ name: "etc", hostPath: { path: "/etc" } }],
      };
      await put("shop/db/x3/app.checkpoint.json", metadata("shop", hostPath, "x3"));

      const restore = async (ns: string, name: string, prefix: string) => {
        await lpm.create("podrestores", ns, {
          apiVersion: "lpm.my.domain/v1",
          kind: "PodRestore",
          metadata: { name, namespace: ns },
          spec: { source: { storage: { storageClassName: "shared", key: prefix } } },
        });
        return await waitFor(async () => {
          const pr = await lpm.get<PodRestore>("podrestores", ns, name);
          return pr?.status?.phase === "Failed" ? pr : undefined;
        }, { what: `PodRestore "${ns}/${name}" to fail`, timeoutMs: 30_000, intervalMs: 100 });
      };
      const reason = (pr: PodRestore) =>
        pr.status?.conditions?.find((c) => c.type === "Succeeded")?.reason;

      // Taken in "shop": "recovery" may not restore it...
      let pr = await restore("recovery", "steal", "shop/db/x1/");
      assertEquals(reason(pr), "NamespaceNotAllowed");
      assertStringIncludes(pr.status!.message!, 'taken in namespace "shop"');
      assertStringIncludes(pr.status!.message!, "spec.restore.allowedNamespaces");
      // ...until the class allows it; then only as recovery's default service account.
      await lpm.delete("checkpointstorageclasses", "", "shared");
      await waitFor(
        async () =>
          !(await lpm.get<CheckpointStorageClass>("checkpointstorageclasses", "", "shared")),
        { what: "the class to go" },
      );
      await lpm.create("checkpointstorageclasses", "", {
        ...classBody(dir),
        spec: { ...classBody(dir).spec, restore: { allowedNamespaces: ["recovery"] } },
      });
      pr = await restore("recovery", "allowed", "shop/db/x1/");
      assertEquals(reason(pr), "Forbidden");
      assertStringIncludes(pr.status!.message!, 'spec.serviceAccountName is "db"');
      // Privileges the spec would gain, in its own namespace.
      pr = await restore("shop", "priv", "shop/db/x2/");
      assertEquals(reason(pr), "Forbidden");
      assertStringIncludes(
        pr.status!.message!,
        'spec.containers["app"].securityContext.privileged',
      );
      pr = await restore("shop", "hostpath", "shop/db/x3/");
      assertEquals(reason(pr), "Forbidden");
      assertStringIncludes(pr.status!.message!, 'spec.volumes["etc"] is a hostPath ("/etc")');
      // Nothing was created in either namespace.
      for (const ns of ["shop", "recovery"]) {
        assertEquals((await core.listNamespacedPod({ namespace: ns })).items.length, 0);
      }
    } finally {
      store.close?.();
      await mgr.stop();
      await env.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
