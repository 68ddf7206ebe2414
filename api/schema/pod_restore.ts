/**
 * PodRestore schema: restore a stored checkpoint as a pod.
 * @module
 */
import { KINDS, RESTORE_PHASES } from "../types.ts";
import { arr, type JsonSchema, labelName, map, obj, rule, str, subdomainName } from "./_helpers.ts";
import type { KindDefinition } from "./kind.ts";
import {
  conditionsSchema,
  messageSchema,
  observedGenerationSchema,
  phaseSchema,
  phaseTransitionsSchema,
} from "./common.ts";

const SOURCES = ["image", "storage", "layout"] as const;

const sourceSchema: JsonSchema = obj(
  "Where the checkpoint comes from: exactly one of image, storage, layout.",
  {
    image: obj("Checkpoint images in a registry, one per container.", {
      references: arr(
        "Image of each container.",
        obj("A container and its checkpoint image.", {
          containerName: labelName("Container name."),
          image: str("Checkpoint image reference (prefer a digest).", {
            minLength: 1,
            maxLength: 1024,
          }),
        }, { required: ["containerName", "image"] }),
        { minItems: 1, maxItems: 64, mapKeys: ["containerName"] },
      ),
    }, { required: ["references"] }),
    storage: obj("A checkpoint stored by a CheckpointStorageClass.", {
      storageClassName: subdomainName("Class the checkpoint is stored in."),
      key: str("Key of the checkpoint (its prefix) in the backend.", {
        minLength: 1,
        maxLength: 1024,
      }),
    }, { required: ["storageClassName", "key"] }),
    layout: obj(
      "An OCI image layout (directory or tarball) the controller can read, e.g. on a volume " +
        "mounted into it; its image is pushed into the default class's registry.",
      {
        path: str("Absolute path where the controller runs.", {
          minLength: 1,
          maxLength: 4096,
          pattern: "^/",
        }),
      },
      { required: ["path"] },
    ),
  },
  {
    rules: [
      rule(
        SOURCES.map((s) => `(has(self.${s}) ? 1 : 0)`).join(" + ") + " == 1",
        "exactly one of image, storage or layout must be set",
      ),
    ],
  },
);

const specSchema: JsonSchema = obj("What to restore and where.", {
  source: sourceSchema,
  podName: subdomainName("Name of the restored pod; default the PodRestore's name."),
  nodeName: subdomainName("Node to restore on; the scheduler picks when unset."),
  labels: map("Labels of the restored pod.", str("Label value.", { maxLength: 63 }), {}),
}, { required: ["source"] });

const statusSchema: JsonSchema = obj("Progress of the restore.", {
  phase: phaseSchema(RESTORE_PHASES),
  conditions: conditionsSchema,
  observedGeneration: observedGenerationSchema,
  restoredPodName: str("The restored pod.", { maxLength: 253 }),
  message: messageSchema,
  phaseTransitionTimestamps: phaseTransitionsSchema,
});

/** The PodRestore kind. */
export const podRestoreKind: KindDefinition = {
  ...KINDS.PodRestore,
  singular: "podrestore",
  shortNames: ["prst"],
  description:
    "PodRestore restores a stored checkpoint (images, a storage class key, or an OCI layout) as a pod in this cluster.",
  spec: specSchema,
  status: statusSchema,
  printerColumns: [
    { name: "Pod", type: "string", jsonPath: ".status.restoredPodName" },
    { name: "Node", type: "string", jsonPath: ".spec.nodeName" },
    { name: "Phase", type: "string", jsonPath: ".status.phase" },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ],
};
