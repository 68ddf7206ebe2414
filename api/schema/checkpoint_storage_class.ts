/**
 * CheckpointStorageClass schema: where and how checkpoints are stored.
 * @module
 */
import { KINDS, PROVIDERS, STORAGE_CLASS_PHASES } from "../types.ts";
import {
  arr,
  bool,
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
  secretRefSchema,
} from "./common.ts";

/** An encryption key id: letters, digits, ".", "_", "-". */
export const ENCRYPTION_KEY_ID = "^[A-Za-z0-9][A-Za-z0-9._-]*$";

/** Go duration ("72h", "1h30m", "90s"), as `time.ParseDuration` reads it. */
export const GO_DURATION = "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

const caBundle = str("PEM bundle of CA certificates to trust for this endpoint.", {
  maxLength: 262144,
});
const endpoint = (what: string) =>
  str(`${what} endpoint URL (http:// or https://).`, {
    maxLength: 2048,
    pattern: "^https?://[^\\s/]+(/.*)?$",
  });
const bucket = str("Bucket name.", {
  minLength: 3,
  maxLength: 63,
  pattern: "^[a-z0-9][a-z0-9.-]*[a-z0-9]$",
});
const region = str("Region.", { maxLength: 64 });
const prefix = str("Key prefix inside the bucket.", { maxLength: 512 });

const specSchema: JsonSchema = obj("Where and how checkpoints are stored.", {
  provider: oneOf(
    "Storage backend; exactly the parameter block of the same name must be set.",
    PROVIDERS,
  ),
  default: bool(
    "The class used when a migration or checkpoint names none. At most one class should set it.",
    {
      default: false,
    },
  ),
  local: obj("Parameters of provider local: a directory on each node.", {
    path: str("Absolute directory on the node.", { minLength: 1, maxLength: 4096, pattern: "^/" }),
  }, { required: ["path"] }),
  pvc: obj("Parameters of provider pvc: a shared (ReadWriteMany) volume.", {
    claimName: subdomainName("PersistentVolumeClaim name (in the lpm-system namespace)."),
    mountPath: str("Where the agent mounts the claim.", {
      minLength: 1,
      maxLength: 4096,
      pattern: "^/",
    }),
    subPath: str("Directory inside the volume.", { maxLength: 4096, pattern: "^[^/]" }),
  }, { required: ["claimName", "mountPath"] }),
  s3: obj("Parameters of provider s3: any S3-compatible endpoint.", {
    endpoint: endpoint("S3 (default: AWS for the region)"),
    bucket,
    region,
    prefix,
    forcePathStyle: bool("Path-style addressing (bucket in the path, not the host name)."),
    caBundle,
    insecureSkipTLSVerify: bool("Skip TLS verification (tests only)."),
  }, { required: ["bucket"] }),
  minio: obj("Parameters of provider minio: a MinIO server.", {
    endpoint: endpoint("MinIO"),
    bucket,
    region,
    prefix,
    caBundle,
  }, { required: ["endpoint", "bucket"] }),
  credentialsSecretRef: secretRefSchema("Secret holding the access key pair.", {
    accessKeyIdKey: str("Key of the access key id in the Secret.", {
      default: "accessKeyId",
      minLength: 1,
      maxLength: 253,
    }),
    secretAccessKeyKey: str("Key of the secret access key in the Secret.", {
      default: "secretAccessKey",
      minLength: 1,
      maxLength: 253,
    }),
  }),
  registry: obj("OCI registry that receives checkpoint images (what target nodes pull).", {
    repository: str("Repository, host[:port]/path.", {
      minLength: 1,
      maxLength: 255,
      pattern:
        "^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)+$",
    }),
    credentialsSecretRef: secretRefSchema("A kubernetes.io/dockerconfigjson Secret."),
    insecure: bool("Plain HTTP (loopback or development registries only)."),
    caBundle,
  }, { required: ["repository"] }),
  retention: obj("How long checkpoints are kept.", {
    maxAge: str('Delete checkpoints older than this Go duration, e.g. "72h".', {
      maxLength: 64,
      pattern: GO_DURATION,
    }),
    maxCount: int("Keep at most this many checkpoints per pod.", { minimum: 1, maximum: 10000 }),
  }),
  deletionPolicy: oneOf(
    "What happens to a checkpoint's stored archives and images when its PodCheckpoint (or standalone ContainerCheckpoint) is deleted: Delete removes them, Retain keeps them.",
    ["Delete", "Retain"],
    { default: "Delete" },
  ),
  restore: obj("Who may restore this class's checkpoints with a PodRestore.", {
    allowedNamespaces: arr(
      'Namespaces that may restore a checkpoint taken in another namespace ("*": any). By default a checkpoint restores only into the namespace it was taken in: it holds that namespace\'s memory, secrets included.',
      str("A namespace name, or *.", {
        maxLength: 63,
        pattern: "^(\\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$",
      }),
      { maxItems: 256, set: true },
    ),
  }),
  encryption: obj(
    "Encrypts the class's archives (before they leave the source node) and checkpoint images (ocicrypt media types); absent: stored in plain.",
    {
      secretRef: secretRefSchema(
        "Secret holding the keys: each 32 random bytes as base64 or hex text (`openssl rand -base64 32`). The agents read it, so it must be in their namespace.",
      ),
      keys: arr(
        "The keys, newest first: the first encrypts new checkpoints, every listed key decrypts. Rotate by adding a new key first; drop an old one only when no checkpoint needs it.",
        obj("One key.", {
          id: str("Key id, recorded with each checkpoint it encrypts.", {
            minLength: 1,
            maxLength: 64,
            pattern: ENCRYPTION_KEY_ID,
          }),
          secretKey: str("Key of the material in the Secret (default: the id).", {
            minLength: 1,
            maxLength: 253,
            pattern: "^[-._a-zA-Z0-9]+$",
          }),
        }, { required: ["id"] }),
        { minItems: 1, maxItems: 16, mapKeys: ["id"] },
      ),
    },
    { required: ["secretRef", "keys"] },
  ),
}, {
  required: ["provider"],
  rules: PROVIDERS.flatMap((p) => [
    rule(`self.provider != '${p}' || has(self.${p})`, `${p} is required when provider is "${p}"`, {
      fieldPath: `.${p}`,
      reason: "FieldValueRequired",
    }),
    rule(
      `!has(self.${p}) || self.provider == '${p}'`,
      `${p} must be unset unless provider is "${p}"`,
      {
        fieldPath: `.${p}`,
        reason: "FieldValueForbidden",
      },
    ),
  ]),
});

const statusSchema: JsonSchema = obj("Observed state: the result of the last validation.", {
  phase: phaseSchema(STORAGE_CLASS_PHASES),
  lastValidationTime: dateTime("When the backend was last checked."),
  message: messageSchema,
  conditions: conditionsSchema,
  observedGeneration: observedGenerationSchema,
  retention: obj("What the last retention pass found and did.", {
    lastRunTime: dateTime("When the last pass ended."),
    nextRunTime: dateTime("When the next periodic pass is due."),
    checkpoints: int("Checkpoints the store holds after the pass.", { minimum: 0 }),
    bytes: int("Bytes the store holds after the pass (archives and metadata).", { minimum: 0 }),
    collected: int("Checkpoints the pass removed.", { minimum: 0 }),
    protected: int(
      "Checkpoints the pass would have removed but kept: a migration or restore needs them.",
      { minimum: 0 },
    ),
    message: messageSchema,
  }),
  encryption: str('"On" (and the id of the key that encrypts) or "Off", as last validated.', {
    maxLength: 128,
  }),
});

/** The CheckpointStorageClass kind. */
export const checkpointStorageClassKind: KindDefinition = {
  ...KINDS.CheckpointStorageClass,
  singular: "checkpointstorageclass",
  shortNames: ["csc"],
  description:
    "CheckpointStorageClass is a cluster-wide place to store checkpoints (a backend, its credentials, a registry for checkpoint images and a retention policy).",
  spec: specSchema,
  status: statusSchema,
  printerColumns: [
    { name: "Provider", type: "string", jsonPath: ".spec.provider" },
    { name: "Default", type: "boolean", jsonPath: ".spec.default" },
    { name: "Encryption", type: "string", jsonPath: ".status.encryption" },
    { name: "Phase", type: "string", jsonPath: ".status.phase" },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ],
};
