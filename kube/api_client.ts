/**
 * The one way lpm makes a client-node typed API client
 * ({@linkcode makeApiClient}), for the CLI, the local environment and the
 * tests; its requests are counted (api_requests.ts). The controller and the
 * agent never load client-node at runtime (kubeconfig.ts).
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import "./http1.ts";
import { recordApiRequest } from "./api_requests.ts";

const counting: k8s.Middleware = {
  pre: (ctx) => {
    recordApiRequest(ctx.getHttpMethod(), ctx.getUrl());
    return Promise.resolve(ctx);
  },
  post: (res) => Promise.resolve(res),
};

/**
 * `kc.makeApiClient(Api)` whose requests are counted. (client-node's own
 * also sets its User-Agent, which it does not export; lpm's says "lpm".)
 */
export function makeApiClient<T>(
  kc: k8s.KubeConfig,
  Api: new (config: k8s.Configuration) => T,
): T {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("Cannot make an API client: the kubeconfig has no current cluster");
  return new Api(k8s.createConfiguration({
    baseServer: new k8s.ServerConfiguration(cluster.server, {}),
    authMethods: { default: kc },
    promiseMiddleware: [
      counting,
      {
        pre: (ctx) => {
          ctx.setHeaderParam("User-Agent", "lpm");
          return Promise.resolve(ctx);
        },
        post: (res) => Promise.resolve(res),
      },
    ],
  }));
}
