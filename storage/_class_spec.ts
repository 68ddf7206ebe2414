/**
 * Local copy of the `CheckpointStorageClass` spec shape, used until
 * `api/mod.ts` exports it. Keep field names identical to the API types.
 * @module
 */

/** Spec of a CheckpointStorageClass (the fields storage reads). */
export interface CheckpointStorageClassSpec {
  provider: "local" | "pvc" | "s3" | "minio";
  default?: boolean;
  local?: { path: string };
  pvc?: { claimName: string; mountPath: string; subPath?: string };
  s3?: {
    endpoint?: string;
    bucket: string;
    region?: string;
    prefix?: string;
    forcePathStyle?: boolean;
    caBundle?: string;
    insecureSkipTLSVerify?: boolean;
  };
  minio?: { endpoint: string; bucket: string; region?: string; prefix?: string; caBundle?: string };
  credentialsSecretRef?: {
    name: string;
    namespace: string;
    accessKeyIdKey?: string;
    secretAccessKeyKey?: string;
  };
  registry?: Record<string, unknown>;
  retention?: { maxAge?: string; maxCount?: number };
}

/** A CheckpointStorageClass object (the fields storage reads). */
export interface CheckpointStorageClass {
  apiVersion?: string;
  kind?: string;
  metadata: { name?: string; generation?: number; [k: string]: unknown };
  spec: CheckpointStorageClassSpec;
  status?: {
    phase?: "Available" | "Unavailable";
    lastValidationTime?: string;
    message?: string;
    conditions?: unknown[];
    observedGeneration?: number;
  };
}
