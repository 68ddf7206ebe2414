/**
 * PodMigration schema: move a running pod to another node.
 * @module
 */
import { KINDS, MIGRATION_PHASES } from "../types.ts";
import {
  arr,
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
  targetNode: subdomainName(
    "Node the pod moves to. Unset, the controller chooses a node that fits the pod (status.targetNode). Immutable.",
    { rules: [immutable("targetNode")] },
  ),
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
  freezeDeadlineSeconds: int(
    "The source is frozen from its final checkpoint until hand-over; its node's agent thaws it by itself when the migration has not renewed the freeze for this many seconds (a controller gone, a lost agent).",
    { minimum: 10, maximum: 3600, default: 120 },
  ),
  ttlSecondsAfterFinished: int(
    "Delete the migration this many seconds after it finished (Succeeded or Failed), and with it its PodCheckpoint and that checkpoint's stored data; the restored pod stays. Unset, a finished migration stays until deleted.",
    { minimum: 0, maximum: 31536000 },
  ),
  preCopy: obj(
    "Pre-copy (docs/pre-copy.md): memory copied while the source runs, so the frozen transfer carries only the pages dirtied since. Containerd nodes, classes without encryption.",
    {
      rounds: int(
        "At most this many full dumps while the source runs (each stops it for part of the dump's length); they stop early when the dirty set stops shrinking. 0: off.",
        { minimum: 0, maximum: 16 },
      ),
    },
  ),
  bandwidthLimit: str(
    'Reserved: transfer limit in bytes per second, a quantity like "100Mi"; not implemented yet: set, it fails the migration.',
    {
      maxLength: 32,
      pattern: QUANTITY,
    },
  ),
}, {
  required: ["podName"],
  rules: [
    // Setting it later would move a migration already under way.
    rule(
      "has(self.targetNode) == has(oldSelf.targetNode)",
      "targetNode cannot be added or removed after creation",
      { fieldPath: ".targetNode" },
    ),
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
  targetNode: str("Node the pod moves to: spec.targetNode, or the node the controller chose.", {
    maxLength: 253,
  }),
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
  frozenAt: dateTime("When every container of the source was frozen (by its node's agent)."),
  restoredRunningAt: dateTime(
    "When the restored pod's last container started running (as the target node's runtime reports it).",
  ),
  preCopy: obj("With spec.preCopy: each container's rounds and parent image.", {
    containers: arr(
      "One entry per container.",
      obj("A container's pre-copy.", {
        name: str("Container name.", { maxLength: 63 }),
        operationId: str("The source agent's pre-copy operation.", { maxLength: 253 }),
        image: str(
          "The parent-only image (the last round), pulled on the target before the freeze.",
          {
            maxLength: 1024,
          },
        ),
        rounds: arr(
          "The rounds, in order.",
          obj("One round.", {
            round: int("1-based.", { minimum: 1 }),
            pages: int("Pages in the round's dump.", { minimum: 0 }),
            dirtyPages: int("Pages changed since the round before (round 1: all).", { minimum: 0 }),
            dirtyBytes: int("Bytes of those pages.", { minimum: 0 }),
            dumpMs: int(
              "How long the round's dump took (runc checkpoint --leave-running), in milliseconds: the source was stopped for at most this long.",
              { minimum: 0 },
            ),
          }),
          { maxItems: 16 },
        ),
      }, { required: ["name", "operationId"] }),
      { maxItems: 64 },
    ),
  }),
  timings: obj("Measured durations; docs/api.md says what each measures.", {
    preCopyMs: ms("The PreCopying phase: rounds and the target's pull of the parent images"),
    checkpointMs: ms("The Checkpointing phase: freeze, dump and upload of every container"),
    dumpMs: ms("From the freeze until every container's archive was written on the node"),
    uploadMs: ms("From the archives on the node until stored and pushed (slowest container)"),
    prePullMs: ms("The Transferring phase: the target node pulled the checkpoint images"),
    transferMs: ms("Same as prePullMs (kept for existing readers)"),
    restoreMs: ms("From creating the restored pod until its last container ran"),
    totalMs: ms("From start to completion"),
    downtimeMs: ms("From the freeze of the source until the restored pod's last container ran"),
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
    // The status copies spec.targetNode, so one column shows a named or a chosen node.
    { name: "Target", type: "string", jsonPath: ".status.targetNode" },
    { name: "Phase", type: "string", jsonPath: ".status.phase" },
    { name: "Downtime-ms", type: "integer", jsonPath: ".status.timings.downtimeMs", priority: 1 },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ],
};
