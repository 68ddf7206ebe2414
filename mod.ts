/**
 * lpm: live migration of running Kubernetes pods with CRIU.
 *
 * Each part has its own public face, re-exported here under a name:
 * `api` (the lpm.my.domain/v1 types), `controllers` (the manager and
 * reconcilers), `agent` (the node agent: gRPC service, pipeline, drivers),
 * `contract` (the agent's contract: proto, client, mTLS, discovery),
 * `storage` (checkpoint storage backends), `oci` (checkpoint images and the
 * registry client), `archive` (the CRIU checkpoint archive format).
 *
 * ```ts
 * import { api, storage } from "./mod.ts";
 * const store = storage.createStore({ provider: "local", local: { path: "/var/lib/lpm" } });
 * ```
 * @module
 */
export * as api from "./api/mod.ts";
export * as controllers from "./controllers/mod.ts";
export * as agent from "./agent/mod.ts";
export * as contract from "./contract/mod.ts";
export * as storage from "./storage/mod.ts";
export * as oci from "./oci/mod.ts";
export * as archive from "./archive/mod.ts";
