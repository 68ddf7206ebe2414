/**
 * Schema pieces shared by every kind: metav1.Condition, phase history,
 * Secret references.
 * @module
 */
import {
  arr,
  dateTime,
  int,
  type JsonSchema,
  labelName,
  obj,
  oneOf,
  str,
  subdomainName,
} from "./_helpers.ts";

/** Schema of {@linkcode CarriedVolumes}: emptyDir contents carried with a checkpoint. */
export const carriedVolumesSchema: JsonSchema = obj(
  "emptyDir volumes whose contents travel with the checkpoint (an OCI image copied into the restored pod's emptyDirs by an init container).",
  {
    names: arr("Names of the pod's emptyDir volumes in the image.", labelName("Volume name."), {
      maxItems: 64,
      set: true,
    }),
    image: str("Volume image reference, repo@sha256:....", {
      maxLength: 1024,
      pattern: "@sha256:[a-f0-9]{64}$",
    }),
    size: int("Bytes of volume data.", { minimum: 0 }),
  },
  { required: ["names", "image", "size"] },
);

/** metav1.Condition, with upstream's patterns and limits. */
export const conditionSchema: JsonSchema = obj(
  "Condition contains details for one aspect of the current state of this object (metav1.Condition).",
  {
    type: str("Type of condition in CamelCase or in foo.example.com/CamelCase.", {
      maxLength: 316,
      pattern:
        "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    }),
    status: oneOf("Status of the condition.", ["True", "False", "Unknown"]),
    observedGeneration: int("The .metadata.generation the condition was set from.", { minimum: 0 }),
    lastTransitionTime: dateTime("Last time the condition's status changed."),
    reason: str("Programmatic identifier of the reason for the last transition, in CamelCase.", {
      minLength: 1,
      maxLength: 1024,
      pattern: "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
    }),
    message: str("Human-readable message about the transition.", { maxLength: 32768 }),
  },
  { required: ["type", "status", "lastTransitionTime", "reason", "message"] },
);

/** `status.conditions`: a list-map keyed by type. */
export const conditionsSchema: JsonSchema = arr(
  "Conditions: the machine-readable state; phases are for people.",
  conditionSchema,
  { mapKeys: ["type"], maxItems: 32 },
);

/** `status.observedGeneration`. */
export const observedGenerationSchema: JsonSchema = int(
  "The .metadata.generation the controller last acted on.",
  { minimum: 0 },
);

/** `status.message`. */
export const messageSchema: JsonSchema = str("Human-readable detail of the phase.", {
  maxLength: 32768,
});

/** `status.phaseTransitionTimestamps`. */
export const phaseTransitionsSchema: JsonSchema = arr(
  "When each phase was entered, oldest first.",
  obj("A phase and when it was entered.", {
    phase: str("The phase entered.", { maxLength: 64 }),
    phaseTransitionTimestamp: dateTime("When it was entered."),
  }, { required: ["phase", "phaseTransitionTimestamp"] }),
  { maxItems: 32 },
);

/** A reference to a Secret in a namespace. */
export function secretRefSchema(description: string, extra: Record<string, JsonSchema> = {}) {
  return obj(description, {
    name: subdomainName("Secret name."),
    namespace: str("Secret namespace.", {
      minLength: 1,
      maxLength: 63,
      pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    }),
    ...extra,
  }, { required: ["name", "namespace"] });
}

/** A status phase from `values`. */
export function phaseSchema(values: readonly string[]): JsonSchema {
  return oneOf("Phase, for people (conditions are for machines).", values);
}
