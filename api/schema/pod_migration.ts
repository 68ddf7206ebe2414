/**
 * PodMigration schema: move a running pod to another node.
 * @module
 */
import { KINDS, MIGRATION_PHASES } from "../types.ts";
import {
  dateTime,
  int,
  type JsonSchema,
  obj,
  oneOf,
  rule,
  str,
  subdomainName,
} from "./_helpers.ts";
import type { KindDefinition } from "./kind.ts";
import {
  conditionsSchema,
  messageSchema,
  observedGenerationSchema,
  phaseSchema,
  phaseTransitionsSchema,
} from "./common.ts";

/** `oldSelf` rule that makes a field immutable after creation. */
const immutable = (field: string) =>
  rule("self == oldSelf", `${field} is immutable: create a new PodMigration instead`);

/** A resource quantity such as "100Mi" or "1G" (bytes per second). */
export const QUANTITY = "^[0-9]+(\\.[0-9]+)?(k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?$";

const specSchema: JsonSchema = obj("The pod to move and where.", {
  podName: subdomainName("Pod to migrate, in the PodMigration's namespace. Immutable.", {
    rules: [immutable("podName")],
  }),
  targetNode: subdomainName("Node the pod moves to. Immutable.", {
    rules: [immutable("targetNode")],
  }),
  storageClassName: subdomainName(
    "CheckpointStorageClass to use; the default class when unset. Immutable.",
    { rules: [immutable("storageClassName")] },
  ),
  sourcePodPolicy: oneOf(
    "What happens to the source pod once the restored pod runs.",
    ["Delete", "Keep"],
    { default: "Delete" },
  ),
  timeoutSeconds: int("Fail the migration when it has not succeeded after this many seconds.", {
    minimum: 10,
    maximum: 86400,
    default: 600,
  }),
  preCopy: obj("Reserved: iterative pre-copy (not implemented yet).", {
    rounds: int("Pre-copy rounds before the final dump.", { minimum: 0, maximum: 16 }),
  }),
  bandwidthLimit: str('Reserved: transfer limit in bytes per second, a quantity like "100Mi".', {
    maxLength: 32,
    pattern: QUANTITY,
  }),
}, {
  required: ["podName", "targetNode"],
  rules: [
    // Unsetting the class would silently switch to the default one mid-flight.
    rule(
      "has(self.storageClassName) == has(oldSelf.storageClassName)",
      "storageClassName cannot be added or removed after creation",
      { fieldPath: ".storageClassName" },
    ),
  ],
});

const ms = (what: string) => int(`${what}, in milliseconds.`, { minimum: 0 });

const statusSchema: JsonSchema = obj("Progress and outcome of the migration.", {
  phase: phaseSchema(MIGRATION_PHASES),
  phaseTransitionTimestamps: phaseTransitionsSchema,
  conditions: conditionsSchema,
  observedGeneration: observedGenerationSchema,
  sourceNode: str("Node the pod ran on.", { maxLength: 253 }),
  restoredPodName: str("Name of the restored pod on the target node.", { maxLength: 253 }),
  podCheckpointRef: obj("The PodCheckpoint this migration created.", {
    name: str("PodCheckpoint name.", { maxLength: 253 }),
  }, { required: ["name"] }),
  storageClassName: str("The storage class used (resolved from the default when unset).", {
    maxLength: 253,
  }),
  message: messageSchema,
  startTime: dateTime("When the controller started the migration."),
  completionTime: dateTime("When it succeeded or failed."),
  timings: obj("Measured durations.", {
    checkpointMs: ms("Checkpoint of every container"),
    transferMs: ms("Upload and push of the checkpoint"),
    restoreMs: ms("From creating the target pod until it ran"),
    totalMs: ms("From start to completion"),
    downtimeMs: ms("From the freeze of the source until the restored pod ran"),
  }),
});

/** The PodMigration kind. */
export const podMigrationKind: KindDefinition = {
  ...KINDS.PodMigration,
  singular: "podmigration",
  shortNames: ["pm"],
  description:
    "PodMigration moves a running pod to another node by checkpointing it and restoring it there.",
  spec: specSchema,
  status: statusSchema,
  maxNameLength: 63,
  printerColumns: [
    { name: "Pod", type: "string", jsonPath: ".spec.podName" },
    { name: "Source", type: "string", jsonPath: ".status.sourceNode" },
    { name: "Target", type: "string", jsonPath: ".spec.targetNode" },
    { name: "Phase", type: "string", jsonPath: ".status.phase" },
    { name: "Downtime-ms", type: "integer", jsonPath: ".status.timings.downtimeMs", priority: 1 },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ],
};
