/**
 * PodCheckpoint schema: checkpoint every (or some) container of a pod.
 * @module
 */
import { CHECKPOINT_PHASES, KINDS } from "../types.ts";
import {
  arr,
  bool,
  dateTime,
  int,
  type JsonSchema,
  labelName,
  map,
  obj,
  oneOf,
  rule,
  str,
  subdomainName,
} from "./_helpers.ts";
import type { KindDefinition } from "./kind.ts";
import {
  carriedVolumesSchema,
  conditionsSchema,
  messageSchema,
  observedGenerationSchema,
  phaseSchema,
} from "./common.ts";

const specSchema: JsonSchema = obj("The pod to checkpoint.", {
  podName: subdomainName("Pod to checkpoint, in this namespace."),
  storageClassName: subdomainName("CheckpointStorageClass; the default class when unset."),
  containers: arr(
    "Containers to checkpoint; all of the pod's containers when unset.",
    labelName("Container name."),
    {
      minItems: 1,
      maxItems: 64,
      set: true,
    },
  ),
  leaveRunning: bool(
    "Leave the pod running after the checkpoint (default). False: the whole pod is frozen before any container is dumped and never runs again: a PodMigration that owns this checkpoint hands it over or thaws it, otherwise the pod is stopped (deleted) after the checkpoint.",
    { default: true },
  ),
  freezeDeadlineSeconds: int(
    "With leaveRunning false: the node's agent thaws the pod by itself when the freeze is not renewed for this many seconds.",
    { minimum: 10, maximum: 3600, default: 120 },
  ),
  preCopyOperations: map(
    "Set by a PodMigration with spec.preCopy: container name -> the source agent's pre-copy operation, whose last round the final checkpoint is made incremental against.",
    str("Operation id.", { maxLength: 128 }),
    {
      maxProperties: 64,
      rules: [
        rule(
          "self.all(k, k.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(k) <= 63)",
          "keys must be container names",
        ),
      ],
    },
  ),
}, { required: ["podName"] });

const statusSchema: JsonSchema = obj("Progress and per-container results.", {
  phase: phaseSchema(CHECKPOINT_PHASES),
  conditions: conditionsSchema,
  observedGeneration: observedGenerationSchema,
  nodeName: str("Node the pod runs on.", { maxLength: 253 }),
  frozenAt: dateTime("With leaveRunning false: when every container of the pod was frozen."),
  freeze: obj("With leaveRunning false: the frozen pod.", {
    key: str("The agent's key of the freeze (the PodCheckpoint's uid).", { maxLength: 253 }),
    state: oneOf("Frozen; Thawed (it went on); Stopped (killed).", [
      "Frozen",
      "Thawed",
      "Stopped",
    ]),
    deadline: dateTime("When the agent thaws it unless renewed."),
  }, { required: ["key", "state"] }),
  containers: arr(
    "One entry per checkpointed container.",
    obj("A container's checkpoint.", {
      name: str("Container name.", { maxLength: 63 }),
      containerCheckpointName: str("The ContainerCheckpoint object.", { maxLength: 253 }),
      phase: str("Its phase.", { maxLength: 64 }),
      image: str("Checkpoint image reference (with digest).", { maxLength: 1024 }),
      volumes: carriedVolumesSchema,
      message: messageSchema,
    }, { required: ["name", "containerCheckpointName"] }),
    { mapKeys: ["name"], maxItems: 64 },
  ),
  completionTime: dateTime("When every container's checkpoint finished."),
  message: messageSchema,
});

/** The PodCheckpoint kind. */
export const podCheckpointKind: KindDefinition = {
  ...KINDS.PodCheckpoint,
  singular: "podcheckpoint",
  shortNames: ["pckpt"],
  description: "PodCheckpoint checkpoints the containers of a pod into a storage class.",
  spec: specSchema,
  status: statusSchema,
  maxNameLength: 63,
  printerColumns: [
    { name: "Pod", type: "string", jsonPath: ".spec.podName" },
    { name: "Node", type: "string", jsonPath: ".status.nodeName" },
    { name: "Phase", type: "string", jsonPath: ".status.phase" },
    { name: "Completed", type: "date", jsonPath: ".status.completionTime", priority: 1 },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ],
};
