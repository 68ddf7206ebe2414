/**
 * The lpm.my.domain/v1 API: types, constants, condition helpers and the
 * schemas the CRDs in `crds/` are generated from.
 *
 * ```ts
 * import { API_VERSION, KINDS, type PodMigration } from "../api/mod.ts";
 * const pm: PodMigration = {
 *   apiVersion: API_VERSION,
 *   kind: KINDS.PodMigration.kind,
 *   metadata: { name: "move-counter" },
 *   spec: { podName: "counter", targetNode: "node-b" },
 * };
 * ```
 * @module
 */
export * from "./types.ts";
export * from "./conditions.ts";
export { CATEGORY, crdFor } from "./crd.ts";
export * from "./schema/mod.ts";
export { FULL_OBJECTS } from "./samples.ts";
export type { Complete } from "./samples.ts";
