/**
 * The agent's API server access: the kubelet driver's proxy mode and node
 * lookups need plain requests, not the generated API clients. The client
 * itself is the controllers' (one implementation on Deno's fetch).
 * @module
 */
import { KubeConfig } from "@kubernetes/client-node";
export { type KubeHttp, kubeHttp } from "./http.ts";

/** Loads a KubeConfig from a file, or the in-cluster service account when `path` is empty. */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromCluster();
  return kc;
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
