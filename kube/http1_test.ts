import * as k8s from "@kubernetes/client-node";
import { assertEquals } from "@std/assert";
import { clientNodeHttp1 } from "./http1.ts";

Deno.test("client-node is held to HTTP/1.1: its undici connector gets allowH2 false", () => {
  assertEquals(clientNodeHttp1, true);
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: "https://127.0.0.1:6443", caData: btoa("ca") }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  const proto = k8s.KubeConfig.prototype as unknown as {
    createDispatcherOptions(c: unknown, o: unknown): { connect?: { allowH2?: boolean } };
  };
  const opts = proto.createDispatcherOptions.call(kc, kc.getCurrentCluster(), {});
  assertEquals(opts.connect?.allowH2, false);
});
