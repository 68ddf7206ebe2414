/**
 * The agent's API server access: the kubelet driver's proxy mode and node
 * lookups need plain requests, not the generated API clients. The client
 * itself is the controllers' (one implementation on Deno's fetch).
 * @module
 */
import { KubeConfigFile } from "./kubeconfig.ts";
export { type KubeHttp, kubeHttp } from "./http.ts";

/** Reads a kubeconfig file, or the in-cluster service account when `path` is empty. */
export function loadKubeConfig(path?: string): KubeConfigFile {
  return path ? KubeConfigFile.fromFile(path) : KubeConfigFile.inCluster();
}

/** The kubeconfig to use: --kubeconfig, $KUBECONFIG, the local environment's, else ~/.kube/config. */
export function kubeconfigPath(flag?: string): string {
  if (flag) return flag;
  const env = Deno.env.get("KUBECONFIG");
  if (env) return env;
  const local = new URL("../.lpm/kubeconfig", import.meta.url).pathname;
  try {
    Deno.statSync(local);
    return local;
  } catch {
    return `${Deno.env.get("HOME")}/.kube/config`;
  }
}
