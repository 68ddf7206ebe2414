/**
 * The agent resolves a storage class by name from the real API server, as it
 * does for the controller (which sends only the class name): the
 * CheckpointStorageClass, its credential Secret and the registry's
 * dockerconfigjson Secret are read with the agent's credentials, and the
 * resulting store works against the harness MinIO.
 * @module
 */
import { assertEquals, assertRejects } from "@std/assert";
import { envTest, requirePart } from "../testing/env.ts";
import { kubectl } from "../localenv/mod.ts";
import { kubeHttp, loadKubeConfig } from "../kube/config.ts";
import { resolveStorageClass } from "../agent/storage_class.ts";

envTest({ uses: ["kube", "minio", "registry"] }, {
  name: "agent storage class: resolved by name from the cluster (class, Secret, registry Secret)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const kube = requirePart("kube");
    const m = requirePart("minio");
    const r = requirePart("registry");
    const kc = kube.kubeconfig;
    const suffix = crypto.randomUUID().slice(0, 8);
    const ns = `lpm-agent-cls-${suffix}`;
    const cls = `agent-test-${suffix}`;
    const auth = btoa("robot:s3cret");
    await kubectl(
      kc,
      ["apply", "-f", "-"],
      [
        { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } },
        {
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name: "minio", namespace: ns },
          stringData: { accessKeyId: m.accessKey, secretAccessKey: m.secretKey },
        },
        {
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name: "registry", namespace: ns },
          type: "kubernetes.io/dockerconfigjson",
          stringData: {
            ".dockerconfigjson": JSON.stringify({ auths: { [r.host]: { auth } } }),
          },
        },
        {
          apiVersion: "lpm.my.domain/v1",
          kind: "CheckpointStorageClass",
          metadata: { name: cls },
          spec: {
            provider: "minio",
            minio: { endpoint: m.endpoint, bucket: m.bucket, region: m.region, prefix: cls },
            credentialsSecretRef: { name: "minio", namespace: ns },
            registry: {
              repository: `${r.host}/lpm/checkpoints`,
              insecure: true,
              credentialsSecretRef: { name: "registry", namespace: ns },
            },
          },
        },
      ].map((o) => JSON.stringify(o)).join("\n"),
    );
    const http = kubeHttp(loadKubeConfig(kc));
    try {
      const resolved = await resolveStorageClass({ name: cls }, { kube: http });
      assertEquals(resolved.name, cls);
      assertEquals(resolved.registry, {
        repository: `${r.host}/lpm/checkpoints`,
        insecure: true,
        caBundle: undefined,
        credentials: { username: "robot", password: "s3cret" },
      });
      const key = `ns/pod/${suffix}/probe.txt`;
      await resolved.store.put(key, new Blob(["hello"]).stream());
      assertEquals((await resolved.store.stat(key))?.size, 5);
      await resolved.store.delete(key);
      resolved.store.close?.();

      await assertRejects(
        () => resolveStorageClass({ name: `missing-${suffix}` }, { kube: http }),
        Error,
        `Cannot read CheckpointStorageClass "missing-${suffix}": the API server returned 404`,
      );
      await assertRejects(
        () => resolveStorageClass({ name: cls }),
        Error,
        "has no cluster access",
      );
    } finally {
      http.close();
      await kubectl(kc, ["delete", "checkpointstorageclass", cls, "--ignore-not-found"]).catch(
        () => {},
      );
      await kubectl(kc, ["delete", "namespace", ns, "--wait=false"]).catch(() => {});
    }
  },
});
