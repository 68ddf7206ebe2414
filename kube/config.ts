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
