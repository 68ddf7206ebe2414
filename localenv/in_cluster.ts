/**
 * lpm deployed into the local environment the way an operator installs it:
 * `deno task images` builds the controller and agent images, they go to
 * the environment's registry, and `kubectl apply -k` installs
 * `config/overlays/local` through a kustomization written here with what
 * only the running environment knows:
 *
 * - the images: `<registry>/lpm/<name>@<digest>`;
 * - the API server's port (`KUBERNETES_SERVICE_PORT`; the pods use
 *   hostNetwork and 127.0.0.1, see the overlay);
 * - the nodes' directories: each node's kubelet root, containerd socket and
 *   state live under `<env>/nodes/<node>/`, so the agent mounts `<env>/nodes`
 *   at the same path and finds its node's paths in the ConfigMap
 *   `lpm-agent-nodes` (key = node name, `--node-flags-dir`); its state goes
 *   to `<env>/lpm-agent-state/<node>`, removed with the environment.
 *
 * Then it waits until the controller and one agent per node are Ready.
 * @module
 */
import { type BuildImagesResult, buildLpmImages, pushLpmImages } from "../images/mod.ts";
import { relative } from "node:path";
import { kubectl } from "./control_plane.ts";
import type { EnvironmentInfo, InClusterInfo } from "./info.ts";

const REPO_ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** The kustomization of `env`: the local overlay plus this environment's facts. */
export function inClusterKustomization(
  env: EnvironmentInfo,
  images: { controller: string; agent: string },
  dir: string,
): Record<string, string> {
  // kustomize takes only relative paths to a base.
  const overlay = relative(dir, `${REPO_ROOT}/config/overlays/local`);
  const kube = env.kube!;
  const nodes = env.nodes!;
  const apiPort = new URL(kube.server).port;
  const nodesDir = `${env.dir}/nodes`;
  const image = (name: string, ref: string) => {
    const [newName, digest] = ref.split("@");
    return `  - name: lpm/${name}\n    newName: ${newName}\n    digest: ${digest}\n`;
  };
  const flags = nodes.map((n) =>
    `  ${n.name}: |\n` +
    `    --kubelet-root-dir=${n.rootDir}\n` +
    `    --runtime-endpoint=unix://${n.containerdSocket}\n` +
    `    --criu-log-dir=${n.containerdState}\n`
  ).join("");
  const apiEnv = `            - name: KUBERNETES_SERVICE_PORT\n              value: "${apiPort}"\n`;
  return {
    "kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\n" +
      "kind: Kustomization\n" +
      `resources:\n  - ${overlay}\n  - node-flags.yaml\n` +
      `images:\n${image("controller", images.controller)}${image("agent", images.agent)}` +
      "patches:\n  - path: agent.yaml\n  - path: controller.yaml\n",
    "node-flags.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n" +
      "  name: lpm-agent-nodes\n  namespace: lpm-system\ndata:\n" + flags,
    "controller.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n" +
      "  name: lpm-controller\n  namespace: lpm-system\nspec:\n  template:\n    spec:\n" +
      "      containers:\n        - name: controller\n          env:\n" + apiEnv,
    "agent.yaml": `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: lpm-agent
  namespace: lpm-system
spec:
  template:
    spec:
      containers:
        - name: agent
          env:
${apiEnv}          volumeMounts:
            - { mountPath: /var/lib/kubelet/checkpoints, $patch: delete }
            - { mountPath: /var/lib/kubelet/pods, $patch: delete }
            - { mountPath: /run/containerd/containerd.sock, $patch: delete }
            - { mountPath: /run/containerd/io.containerd.runtime.v2.task, $patch: delete }
            # Every node's kubelet root, containerd socket and state, at their host paths.
            # The environment made this directory a shared mount (environment.ts), so
            # tmpfs emptyDirs mounted under it later are seen here.
            - name: local-nodes
              mountPath: ${nodesDir}
              mountPropagation: HostToContainer
      volumes:
        - { name: kubelet-checkpoints, $patch: delete }
        - { name: kubelet-pods, $patch: delete }
        - { name: runtime-socket, $patch: delete }
        - { name: runtime-tasks, $patch: delete }
        - name: local-nodes
          hostPath: { path: ${nodesDir}, type: Directory }
        - name: state
          hostPath: { path: ${env.dir}/lpm-agent-state, type: DirectoryOrCreate }
`,
  };
}

/** Waits until `kubectl rollout status` says the workload is rolled out. */
async function rolledOut(kubeconfig: string, what: string, timeoutS: number): Promise<void> {
  await kubectl(kubeconfig, [
    "-n",
    "lpm-system",
    "rollout",
    "status",
    what,
    `--timeout=${timeoutS}s`,
  ]);
}

/** Options of {@linkcode deployInCluster}. */
export interface DeployInClusterOptions {
  /** Progress lines. */
  onProgress?: (msg: string) => void;
  /** Take lpm's source from the commit instead of the working tree. */
  fromCommit?: boolean;
}

/** Builds and pushes lpm's images and installs lpm into `env` through kustomize. */
export async function deployInCluster(
  env: EnvironmentInfo,
  opts: DeployInClusterOptions = {},
): Promise<InClusterInfo> {
  const say = opts.onProgress ?? (() => {});
  if (!env.kube || !env.registry || !env.nodes?.length) {
    throw new Error("lpm in-cluster needs the control plane, the registry and nodes");
  }
  const t0 = Date.now();
  const built: BuildImagesResult = await buildLpmImages({
    worktree: !opts.fromCommit,
    onProgress: (m) => say(`images: ${m}`),
  });
  const pushed = await pushLpmImages(built, env.registry.host);
  const refs = Object.fromEntries(pushed.map((p) => [p.name, p.reference])) as {
    controller: string;
    agent: string;
  };
  const tBuilt = Date.now();
  say(
    `images pushed in ${((tBuilt - t0) / 1000).toFixed(1)} s: ${
      pushed.map((p) => p.reference).join(", ")
    }`,
  );
  const dir = `${env.dir}/lpm-in-cluster`;
  await Deno.mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(inClusterKustomization(env, refs, dir))) {
    await Deno.writeTextFile(`${dir}/${name}`, text);
  }
  await kubectl(env.kube.kubeconfig, ["apply", "-k", dir]);
  await rolledOut(env.kube.kubeconfig, "daemonset/lpm-agent", 240);
  await rolledOut(env.kube.kubeconfig, "deployment/lpm-controller", 240);
  const installSeconds = (Date.now() - tBuilt) / 1000;
  say(`lpm installed in-cluster in ${installSeconds.toFixed(1)} s (kubectl apply -k ${dir})`);
  return {
    kustomization: dir,
    images: pushed.map((p) => ({ name: p.name, reference: p.reference, tagged: p.tagged })),
    sizes: Object.fromEntries(built.images.map((i) => [i.name, i.size])),
    buildSeconds: (tBuilt - t0) / 1000,
    installSeconds,
  };
}
