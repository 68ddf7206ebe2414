import { assertEquals } from "@std/assert";
import { apiRequestOf, onApiRequest, recordApiRequest } from "./api_requests.ts";

Deno.test("apiRequestOf names verbs and resources as the audit log does", () => {
  const cases: [string, string, string, string][] = [
    ["GET", "https://h:6443/api/v1/namespaces/ns/pods/p", "get", "pods"],
    ["GET", "/api/v1/namespaces/ns/pods?labelSelector=a", "list", "pods"],
    ["GET", "/api/v1/pods?watch=1&resourceVersion=5", "watch", "pods"],
    ["GET", "/api/v1/nodes/n", "get", "nodes"],
    ["GET", "/api/v1/namespaces/ns", "get", "namespaces"],
    ["POST", "/api/v1/namespaces/ns/events", "create", "events"],
    [
      "PATCH",
      "/apis/lpm.my.domain/v1/namespaces/ns/podmigrations/m/status",
      "patch",
      "podmigrations/status",
    ],
    ["GET", "/apis/lpm.my.domain/v1/checkpointstorageclasses", "list", "checkpointstorageclasses"],
    ["PUT", "/apis/coordination.k8s.io/v1/namespaces/x/leases/l", "update", "leases"],
    ["DELETE", "/api/v1/namespaces/ns/pods/p", "delete", "pods"],
    ["GET", "/api/v1/nodes/n/proxy/checkpoint", "get", "nodes/proxy"],
    ["GET", "/version", "get", "version"],
  ];
  for (const [method, url, verb, resource] of cases) {
    assertEquals(apiRequestOf(method, url), { verb, resource }, `${method} ${url}`);
  }
});

Deno.test("onApiRequest listeners hear requests until stopped", () => {
  const seen: string[] = [];
  const stop = onApiRequest((r) => seen.push(`${r.verb} ${r.resource}`));
  recordApiRequest("GET", "/api/v1/pods");
  stop();
  recordApiRequest("GET", "/api/v1/nodes");
  assertEquals(seen, ["list pods"]);
});
