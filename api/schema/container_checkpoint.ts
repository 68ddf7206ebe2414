/**
 * ContainerCheckpoint schema: checkpoint one container.
 * @module
 */
import { CHECKPOINT_PHASES, KINDS } from "../types.ts";
import { dateTime, int, type JsonSchema, labelName, obj, str, subdomainName } from "./_helpers.ts";
import type { KindDefinition } from "./kind.ts";
import {
  carriedVolumesSchema,
  conditionsSchema,
  messageSchema,
  observedGenerationSchema,
  phaseSchema,
} from "./common.ts";

const count = (what: string) => int(what, { minimum: 0 });

const specSchema: JsonSchema = obj("The container to checkpoint.", {
  podName: subdomainName("Pod of the container, in this namespace."),
  containerName: labelName("Container to checkpoint."),
  storageClassName: subdomainName("CheckpointStorageClass; the default class when unset."),
  freezeKey: str(
    "Set by a PodCheckpoint with leaveRunning false: the freeze its node's agent holds; the container is dumped frozen and stays frozen.",
    { maxLength: 253 },
  ),
  preCopyOperationId: str(
    "Set by a PodCheckpoint with preCopyOperations: the source agent's pre-copy of this container; the archive is made incremental against its last round.",
    { maxLength: 128 },
  ),
}, { required: ["podName", "containerName"] });

const statusSchema: JsonSchema = obj("Progress and the stored result.", {
  phase: phaseSchema(CHECKPOINT_PHASES),
  conditions: conditionsSchema,
  observedGeneration: observedGenerationSchema,
  nodeName: str("Node the container runs on.", { maxLength: 253 }),
  operationId: str("The agent's operation id (idempotency key).", { maxLength: 253 }),
  progress: obj("Progress reported by the agent.", {
    phase: str("Step in progress (dump, archive, push, upload).", { maxLength: 64 }),
    bytesDone: count("Bytes handled so far."),
    bytesTotal: count("Bytes to handle, when known."),
  }),
  archive: obj("The checkpoint archive in the storage backend.", {
    storageClassName: str("Class it was stored with.", { maxLength: 253 }),
    key: str("Object key.", { maxLength: 1024 }),
    sha256: str("Hex SHA-256 of the archive.", { pattern: "^[a-f0-9]{64}$" }),
    size: count("Size in bytes."),
  }, { required: ["storageClassName", "key", "sha256", "size"] }),
  image: obj("The OCI checkpoint image.", {
    reference: str("Pullable reference with digest, repo@sha256:....", {
      maxLength: 1024,
      pattern: "@sha256:[a-f0-9]{64}$",
    }),
    digest: str("Manifest digest.", { pattern: "^sha256:[a-f0-9]{64}$" }),
    tag: str("Tag it was also pushed under.", { maxLength: 128 }),
  }, { required: ["reference", "digest"] }),
  criuStats: obj("CRIU statistics from stats-dump.", {
    freezingTimeUs: count("Time to freeze the processes, µs."),
    frozenTimeUs: count("Time the processes stayed frozen, µs."),
    memdumpTimeUs: count("Time to dump memory, µs."),
    memwriteTimeUs: count("Time to write memory, µs."),
    pagesScanned: count("Pages scanned."),
    pagesSkippedParent: count("Pages skipped (in the parent image)."),
    pagesWritten: count("Pages written."),
  }),
  volumes: carriedVolumesSchema,
  checkpointTime: dateTime("When the checkpoint was taken."),
  runtime: obj("The container runtime that took it.", {
    name: str("Runtime name, e.g. containerd.", { maxLength: 64 }),
    version: str("Runtime version.", { maxLength: 64 }),
    criuVersion: str("CRIU version.", { maxLength: 64 }),
  }, { required: ["name"] }),
  message: messageSchema,
  completionTime: dateTime("When it succeeded or failed."),
});

/** The ContainerCheckpoint kind. */
export const containerCheckpointKind: KindDefinition = {
  ...KINDS.ContainerCheckpoint,
  singular: "containercheckpoint",
  shortNames: ["cckpt"],
  description:
    "ContainerCheckpoint checkpoints one container: a CRIU archive in the storage backend and an OCI checkpoint image in the registry.",
  spec: specSchema,
  status: statusSchema,
  printerColumns: [
    { name: "Pod", type: "string", jsonPath: ".spec.podName" },
    { name: "Container", type: "string", jsonPath: ".spec.containerName" },
    { name: "Node", type: "string", jsonPath: ".status.nodeName" },
    { name: "Phase", type: "string", jsonPath: ".status.phase" },
    { name: "Image", type: "string", jsonPath: ".status.image.reference" },
    { name: "Size", type: "integer", jsonPath: ".status.archive.size", priority: 1 },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ],
};
