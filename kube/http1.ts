/**
 * Keeps @kubernetes/client-node on HTTP/1.1 under Deno.
 *
 * client-node 2.x talks to the API server through undici, which offers HTTP/2
 * by ALPN by default; kube-apiserver accepts it, and undici then runs HTTP/2
 * on Deno's node:http2 layer, which crashed the process here (a SIGSEGV in a
 * tokio worker, and nghttp2's `find_stream_on_goaway_func` assertion when
 * streams were aborted). Passing `allowH2: false` in the connect options
 * makes undici offer only http/1.1. Import this module (for its side effect)
 * before creating API clients; it is idempotent.
 * @module
 */
import * as k8s from "@kubernetes/client-node";

type DispatcherOptions = { type: string; connect?: Record<string, unknown> };
type Proto = {
  createDispatcherOptions?: (...args: unknown[]) => DispatcherOptions;
  __lpmHttp1?: boolean;
};

const proto = k8s.KubeConfig.prototype as unknown as Proto;
if (!proto.__lpmHttp1 && typeof proto.createDispatcherOptions === "function") {
  const original = proto.createDispatcherOptions;
  proto.createDispatcherOptions = function (this: unknown, ...args: unknown[]) {
    const opts = original.apply(this, args);
    if (opts.type === "agent" || opts.type === "proxy") {
      opts.connect = { ...opts.connect, allowH2: false };
    } else if (opts.type === "none") {
      return { type: "agent", connect: { allowH2: false } };
    }
    return opts;
  };
  proto.__lpmHttp1 = true;
}

/** True once client-node is held to HTTP/1.1 (for a test). */
export const clientNodeHttp1: boolean = proto.__lpmHttp1 === true;
