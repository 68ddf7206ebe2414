/**
 * A class whose registry needs credentials, on the real parts: a second
 * registry with htpasswd auth (started here, next to the environment's open
 * one), the two real nodes told to reach it over plain HTTP (a hosts.toml in
 * each containerd's `certs.d`, as an operator would), the agents and the
 * controller. The source agent pushes with the class's
 * `registry.credentialsSecretRef`, the controller hands the same credentials
 * to the target's pre-pull, and the kubelet starts the restored pod from the
 * image the pre-pull put into the node's containerd store (the restored pod
 * pulls `IfNotPresent`, so it needs no imagePullSecret). Without the Secret
 * the migration fails naming the field.
 */
import type * as k8s from "@kubernetes/client-node";
import "../kube/http1.ts";
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { deleteNamespaceAndWait, openWorkspace } from "../testing/e2e.ts";
import { envTest, testEnv } from "../testing/env.ts";
import { counterCommand, counterValues } from "../testing/workloads.ts";
import {
  type EnvironmentInfo,
  registryHostsToml,
  type RegistryInfo,
  startRegistry,
  waitFor,
} from "../localenv/mod.ts";
import type { LpmClient } from "../kube/lpm_client.ts";
import type { ContainerCheckpoint, PodMigration } from "../api/mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

interface Ctx {
  env: EnvironmentInfo;
  core: k8s.CoreV1Api;
  lpm: LpmClient;
  ns: string;
  cls: string;
  registry: RegistryInfo;
  repo: string;
  stop: () => Promise<void>;
}

/** Where a node's containerd reads its registry hosts files. */
function certsDir(node: { containerdSocket: string }): string {
  return node.containerdSocket.replace(/\/containerd\.sock$/, "/certs.d");
}

/**
 * Starts the auth registry, points the nodes at it and opens a namespace with
 * a MinIO class whose registry is it, its credentials in Secret `secret`.
 */
async function setup(secret: string): Promise<Ctx> {
  const env = testEnv();
  if ((env.nodes?.length ?? 0) < 2 || !env.lpm) {
    throw new Error('These tests need 2 nodes and lpm in the environment: run "deno task test"');
  }
  const id = crypto.randomUUID().slice(0, 6);
  const dir = await Deno.makeTempDir({ prefix: "lpm-auth-registry-" });
  const auth = { username: "lpm", password: crypto.randomUUID() };
  const started = await startRegistry(dir, {
    logDir: env.logDir,
    logName: `registry-auth-${id}.log`,
    auth,
  });
  const hostsFiles: string[] = [];
  for (const node of env.nodes!) {
    const d = `${certsDir(node)}/${started.info.host}`;
    await Deno.mkdir(d, { recursive: true });
    await Deno.writeTextFile(`${d}/hosts.toml`, registryHostsToml(started.info.host));
    hostsFiles.push(d);
  }
  const cls = `regauth-${id}`;
  const repo = `lpm/auth-${id}`;
  const { core, lpm, ns } = await openWorkspace(env, {
    ns: `regauth-${id}`,
    storageClass: {
      name: cls,
      prefix: `regauth-${id}/`,
      repository: repo,
      spec: {
        registry: {
          repository: `${started.info.host}/${repo}`,
          insecure: true,
          credentialsSecretRef: { name: secret, namespace: "lpm-system" },
        },
      },
    },
  });
  const stop = async () => {
    await deleteNamespaceAndWait(core, ns);
    await lpm.delete("checkpointstorageclasses", "", cls).catch(() => {});
    for (const name of [cls, secret]) {
      await core.deleteNamespacedSecret({ name, namespace: "lpm-system" }).catch(() => {});
    }
    for (const d of hostsFiles) await Deno.remove(d, { recursive: true }).catch(() => {});
    await started.process.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  return { env, core, lpm, ns, cls, registry: started.info, repo, stop };
}

/** Starts the counter on the first node and waits until it has counted to 3. */
async function startCounter(c: Ctx): Promise<void> {
  await c.core.createNamespacedPod({
    namespace: c.ns,
    body: {
      metadata: { name: "counter" },
      spec: {
        nodeName: c.env.nodes![0].name,
        containers: [{
          name: "counter",
          image: c.env.nodeImages!.busybox,
          command: counterCommand(0.3),
        }],
      },
    },
  });
  await waitFor(async () => {
    const v = await counterValues(c.core, c.ns, "counter", { container: "counter" })
      .catch(() => []);
    return (v.at(-1) ?? 0) >= 3;
  }, { what: "the counter to count", timeoutMs: 60_000 });
}

/** Migrates the counter to the second node and waits for the migration to end. */
async function migrate(c: Ctx, name: string): Promise<PodMigration> {
  await c.lpm.create("podmigrations", c.ns, {
    apiVersion: "lpm.my.domain/v1",
    kind: "PodMigration",
    metadata: { name, namespace: c.ns },
    spec: { podName: "counter", targetNode: c.env.nodes![1].name, storageClassName: c.cls },
  });
  return await waitFor(async () => {
    const pm = await c.lpm.get<PodMigration>("podmigrations", c.ns, name);
    return pm?.status?.phase === "Succeeded" || pm?.status?.phase === "Failed" ? pm : undefined;
  }, { what: `PodMigration "${name}" to finish`, timeoutMs: 150_000, intervalMs: 250 });
}

/** The HTTP status of a manifest GET at the auth registry, with or without its credentials. */
async function manifestStatus(c: Ctx, ref: string, withAuth: boolean): Promise<number> {
  const [, digest] = ref.split("@");
  const { username, password } = c.registry.auth!;
  const res = await fetch(`http://${c.registry.host}/v2/${c.repo}/manifests/${digest}`, {
    headers: {
      accept: "application/vnd.oci.image.manifest.v1+json",
      ...(withAuth ? { authorization: `Basic ${btoa(`${username}:${password}`)}` } : {}),
    },
  });
  await res.body?.cancel();
  return res.status;
}

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name:
    "registry auth: a counter migrates through a class whose registry needs the credentials of registry.credentialsSecretRef",
  ...opts,
  async fn() {
    const secret = `regauth-creds-${crypto.randomUUID().slice(0, 6)}`;
    const c = await setup(secret);
    try {
      const { username, password } = c.registry.auth!;
      // The Secret's usual form for registries: a .dockerconfigjson entry for the host.
      await c.core.createNamespacedSecret({
        namespace: "lpm-system",
        body: {
          metadata: { name: secret },
          type: "kubernetes.io/dockerconfigjson",
          stringData: {
            ".dockerconfigjson": JSON.stringify({
              auths: { [c.registry.host]: { auth: btoa(`${username}:${password}`) } },
            }),
          },
        },
      });
      await startCounter(c);
      const pm = await migrate(c, "move");
      assertEquals(pm.status?.phase, "Succeeded", pm.status?.message);
      const cc = await c.lpm.get<ContainerCheckpoint>("containercheckpoints", c.ns, "move-counter");
      const image = cc!.status!.image!.reference;
      assert(image.startsWith(`${c.registry.host}/${c.repo}@sha256:`), image);
      // The image is there, and only for whoever has the credentials.
      assertEquals(await manifestStatus(c, image, true), 200);
      assertEquals(await manifestStatus(c, image, false), 401);
      const restored = pm.status!.restoredPodName!;
      const pod = await c.core.readNamespacedPod({ name: restored, namespace: c.ns });
      assertEquals(pod.spec?.nodeName, c.env.nodes![1].name);
      assertEquals(pod.spec?.containers[0].image, image);
      assertEquals(pod.spec?.imagePullSecrets, undefined, "the pre-pull alone got the image");
      const before = await counterValues(c.core, c.ns, restored, { container: "counter" });
      await waitFor(async () => {
        const now = await counterValues(c.core, c.ns, restored, { container: "counter" });
        return now.length > before.length;
      }, { what: "the restored counter to go on counting", timeoutMs: 30_000 });
    } finally {
      await c.stop();
    }
  },
});

envTest({ uses: ["kube", "minio", "registry", "nodes", "lpm"] }, {
  name:
    "registry auth: without the Secret of registry.credentialsSecretRef the migration fails naming the field",
  ...opts,
  async fn() {
    const c = await setup(`regauth-missing-${crypto.randomUUID().slice(0, 6)}`);
    try {
      await startCounter(c);
      const pm = await migrate(c, "move");
      assertEquals(pm.status?.phase, "Failed");
      assertStringIncludes(pm.status?.message ?? "", "registry.credentialsSecretRef");
      console.log(`failure: ${pm.status?.message}`);
      // The source thawed and counts on where it was.
      const pod = await c.core.readNamespacedPod({ name: "counter", namespace: c.ns });
      assertEquals(pod.spec?.nodeName, c.env.nodes![0].name);
      assertEquals(pod.status?.phase, "Running");
    } finally {
      await c.stop();
    }
  },
});
