/**
 * Every spec field of every lpm kind (walked from the schemas in
 * `api/schema/`, the one source of the CRDs) has a test that exercises it,
 * or says here why it has none. `FIELDS` maps each field path to the tests
 * that exercise it, by file and name (or the start of the name); the test
 * fails when a schema field is not in the table, when the table names a
 * field the schema lacks, or when a named test does not exist in its file.
 * Fields without a test are listed with the reason, and printed.
 */
import { assert, assertEquals } from "@std/assert";
import { type JsonSchema, KIND_DEFINITIONS } from "../api/mod.ts";

/** Tests that exercise a field: file (from the repository root) and test name or its start. */
type Exercised = { file: string; test: string }[];
/** A field with no test yet, and why. */
type Untested = { untested: string };

const E2E = "e2e: a counter pod moves node-a -> node-b and keeps counting";
const FREEZE_E2E = "freeze e2e: a 10 Hz counter moves node-a -> node-b";
const PRE_COPY_E2E = "pre-copy migration: spec.preCopy moves a counter and a 64 MiB memory toucher";
const S3_MINIO = "s3 and minio providers read each other's objects with the same digest";
const ORIGINAL = "original manifests: the prototype's PodCheckpoint, ContainerCheckpoint";
const CROSS = "cross-cluster: a checkpoint from cluster A (torn down) runs in cluster B";
const LIFECYCLE_DELETE = "lifecycle: deleting a PodCheckpoint removes its archives";
const AUTH_OK = "registry auth: a counter migrates through a class whose registry needs";
const AUTH_MISSING = "registry auth: without the Secret of registry.credentialsSecretRef";
const TLS = "storage class TLS: s3.caBundle, s3.insecureSkipTLSVerify and minio.caBundle";

const e2e = { file: "tests/e2e_migration_test.ts", test: E2E };
const s3Minio = { file: "storage/minio_test.ts", test: S3_MINIO };
const original = { file: "tests/original_manifests_test.ts", test: ORIGINAL };
const cross = { file: "tests/cross_cluster_test.ts", test: CROSS };
const authOk = { file: "tests/registry_auth_test.ts", test: AUTH_OK };
const authMissing = { file: "tests/registry_auth_test.ts", test: AUTH_MISSING };
const tls = { file: "tests/storage_class_tls_test.ts", test: TLS };
const encKeys = {
  file: "storage/encryption_test.ts",
  test: "encryption keys: loadKeyRing and validateEncryption name the field",
};
const encE2e = {
  file: "tests/encryption_test.ts",
  test: "encryption: a marker held in memory migrates through an encrypting class",
};
const fields = (test: string) => ({ file: "tests/storage_class_fields_test.ts", test });

/** Each spec field and the tests that exercise it, or why none does. */
const FIELDS: Record<string, Exercised | Untested> = {
  "CheckpointStorageClass.spec.provider": [
    { file: "storage/validate_test.ts", test: "validateStorageClass: configuration errors" },
    e2e,
  ],
  "CheckpointStorageClass.spec.default": [original],
  "CheckpointStorageClass.spec.local.path": [
    { file: "storage/validate_test.ts", test: "validateStorageClass: a writable local class" },
  ],
  "CheckpointStorageClass.spec.pvc.claimName": [
    { file: "storage/pvc_test.ts", test: "pvc: a claim that is not mounted is NotFound" },
  ],
  "CheckpointStorageClass.spec.pvc.mountPath": [
    { file: "storage/pvc_test.ts", test: "pvc: a claim that is not mounted is NotFound" },
  ],
  "CheckpointStorageClass.spec.pvc.subPath": [
    { file: "storage/pvc_test.ts", test: "pvc: a claim that is not mounted is NotFound" },
  ],
  "CheckpointStorageClass.spec.s3.endpoint": [s3Minio],
  "CheckpointStorageClass.spec.s3.bucket": [s3Minio],
  "CheckpointStorageClass.spec.s3.region": [s3Minio],
  "CheckpointStorageClass.spec.s3.prefix": [s3Minio],
  "CheckpointStorageClass.spec.s3.forcePathStyle": [
    fields("storage class fields: s3.forcePathStyle keeps the bucket in the path"),
  ],
  "CheckpointStorageClass.spec.s3.caBundle": [tls],
  "CheckpointStorageClass.spec.s3.insecureSkipTLSVerify": [tls],
  "CheckpointStorageClass.spec.minio.endpoint": [s3Minio, e2e],
  "CheckpointStorageClass.spec.minio.bucket": [s3Minio, e2e],
  "CheckpointStorageClass.spec.minio.region": [s3Minio],
  "CheckpointStorageClass.spec.minio.prefix": [s3Minio, e2e],
  "CheckpointStorageClass.spec.minio.caBundle": [tls],
  "CheckpointStorageClass.spec.credentialsSecretRef.name": [
    { file: "tests/agent_storage_class_test.ts", test: "agent storage class: resolved by name" },
    e2e,
  ],
  "CheckpointStorageClass.spec.credentialsSecretRef.namespace": [
    { file: "tests/agent_storage_class_test.ts", test: "agent storage class: resolved by name" },
    e2e,
  ],
  "CheckpointStorageClass.spec.credentialsSecretRef.accessKeyIdKey": [
    fields("storage class fields: credentialsSecretRef.accessKeyIdKey and secretAccessKeyKey"),
  ],
  "CheckpointStorageClass.spec.credentialsSecretRef.secretAccessKeyKey": [
    fields("storage class fields: credentialsSecretRef.accessKeyIdKey and secretAccessKeyKey"),
  ],
  "CheckpointStorageClass.spec.registry.repository": [e2e, authOk],
  "CheckpointStorageClass.spec.registry.credentialsSecretRef.name": [authOk, authMissing],
  "CheckpointStorageClass.spec.registry.credentialsSecretRef.namespace": [authOk, authMissing],
  "CheckpointStorageClass.spec.registry.insecure": [
    e2e,
    { file: "oci/insecure_test.ts", test: "insecureRegistryRefusal: plain HTTP is refused" },
  ],
  "CheckpointStorageClass.spec.registry.caBundle": [
    { file: "tests/agent_storage_class_test.ts", test: "agent storage class: resolved by name" },
  ],
  "CheckpointStorageClass.spec.retention.maxAge": [
    { file: "storage/gc_test.ts", test: "retention keeps maxCount newest checkpoints per pod" },
    {
      file: "controllers/checkpoint_retention_nodes_test.ts",
      test: "node retention: maxAge by completion time",
    },
  ],
  "CheckpointStorageClass.spec.retention.maxCount": [
    { file: "tests/checkpoint_lifecycle_test.ts", test: "lifecycle: a class with maxCount 2" },
    { file: "tests/checkpoint_lifecycle_test.ts", test: "lifecycle: a local (hostPath) class" },
  ],
  "CheckpointStorageClass.spec.deletionPolicy": [
    { file: "tests/checkpoint_lifecycle_test.ts", test: LIFECYCLE_DELETE },
  ],
  "CheckpointStorageClass.spec.encryption.secretRef.name": [encKeys, encE2e],
  "CheckpointStorageClass.spec.encryption.secretRef.namespace": [encKeys, encE2e],
  "CheckpointStorageClass.spec.encryption.keys[].id": [encKeys, encE2e],
  "CheckpointStorageClass.spec.encryption.keys[].secretKey": [encKeys],
  "CheckpointStorageClass.spec.restore.allowedNamespaces": [
    { file: "tests/pod_restore_policy_test.ts", test: "PodRestore: other namespaces" },
  ],
  "PodMigration.spec.podName": [e2e],
  "PodMigration.spec.targetNode": [e2e],
  "PodMigration.spec.storageClassName": [e2e],
  "PodMigration.spec.sourcePodPolicy": [
    { file: "tests/e2e_freeze_test.ts", test: "freeze e2e: sourcePodPolicy Keep" },
  ],
  "PodMigration.spec.timeoutSeconds": [
    { file: "tests/controllers_test.ts", test: "controllers: spec.timeoutSeconds fails" },
  ],
  "PodMigration.spec.ttlSecondsAfterFinished": [
    {
      file: "tests/pod_migration_ttl_test.ts",
      test: "ttl: a finished migration is deleted after spec.ttlSecondsAfterFinished",
    },
    { file: "controllers/pod_migration_ttl_test.ts", test: "ttl: before its time it waits" },
  ],
  "PodMigration.spec.freezeDeadlineSeconds": [
    { file: "tests/e2e_freeze_test.ts", test: "freeze e2e: the controller killed while" },
  ],
  "PodMigration.spec.preCopy.rounds": [
    { file: "tests/e2e_pre_copy_migration_test.ts", test: PRE_COPY_E2E },
    { file: "tests/controllers_test.ts", test: "controllers: bad input fails with a condition" },
  ],
  "PodMigration.spec.bandwidthLimit": [
    { file: "tests/controllers_test.ts", test: "controllers: bad input fails with a condition" },
  ],
  "PodCheckpoint.spec.podName": [original],
  "PodCheckpoint.spec.storageClassName": [
    { file: "tests/checkpoint_lifecycle_test.ts", test: LIFECYCLE_DELETE },
  ],
  "PodCheckpoint.spec.containers": [
    {
      file: "tests/checkpoint_lifecycle_test.ts",
      test: "lifecycle: a PodCheckpoint with spec.containers",
    },
  ],
  "PodCheckpoint.spec.leaveRunning": [
    {
      file: "tests/checkpoint_lifecycle_test.ts",
      test: "lifecycle: a PodCheckpoint with leaveRunning false",
    },
  ],
  // A migration's PodCheckpoint carries the migration's deadline.
  "PodCheckpoint.spec.freezeDeadlineSeconds": [
    { file: "tests/e2e_freeze_test.ts", test: "freeze e2e: the controller killed while" },
  ],
  "ContainerCheckpoint.spec.podName": [original],
  "ContainerCheckpoint.spec.containerName": [original],
  "ContainerCheckpoint.spec.storageClassName": [original],
  // Set by the PodCheckpoint controller on every frozen (migration) checkpoint.
  "ContainerCheckpoint.spec.freezeKey": [{ file: "tests/e2e_freeze_test.ts", test: FREEZE_E2E }],
  // Set by a PodMigration with spec.preCopy (and passed on): the test reads both back.
  "PodCheckpoint.spec.preCopyOperations": [
    { file: "tests/e2e_pre_copy_migration_test.ts", test: PRE_COPY_E2E },
  ],
  "ContainerCheckpoint.spec.preCopyOperationId": [
    { file: "tests/e2e_pre_copy_migration_test.ts", test: PRE_COPY_E2E },
  ],
  "PodRestore.spec.source.image.references[].containerName": [cross],
  "PodRestore.spec.source.image.references[].image": [cross],
  "PodRestore.spec.source.storage.storageClassName": [cross],
  "PodRestore.spec.source.storage.key": [cross],
  "PodRestore.spec.source.layout.path": [cross],
  "PodRestore.spec.podName": [cross],
  "PodRestore.spec.nodeName": [cross],
  "PodRestore.spec.labels": [cross],
};

/** Leaf field paths of a schema (`Kind.spec.a.b`, `[]` for arrays of objects). */
function leafPaths(s: JsonSchema, path: string): string[] {
  if (s.type === "object" && s.properties) {
    return Object.entries(s.properties).flatMap(([k, v]) => leafPaths(v, `${path}.${k}`));
  }
  if (s.type === "array" && s.items?.type === "object" && s.items.properties) {
    return leafPaths(s.items, `${path}[]`);
  }
  return [path];
}

/** Test names registered in a file: string literals (joined across `+`) after `Deno.test(`, `name:` or an envTest's needs. */
function testNames(text: string): string[] {
  const re =
    /(?:Deno\.test\(\s*|\bname:\s*|envTest\(\s*\{[^}]*\},\s*)((?:"(?:[^"\\]|\\.)*"\s*\+?\s*)+)/g;
  return [...text.matchAll(re)].map((m) =>
    [...m[1].matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((x) => JSON.parse(`"${x[1]}"`)).join("")
  );
}

Deno.test("spec fields: every field in api/schema/ has a test that exercises it, or a reason it has none", async () => {
  const schemaFields = KIND_DEFINITIONS.flatMap((d) => leafPaths(d.spec, `${d.kind}.spec`));
  const missing = schemaFields.filter((f) => !(f in FIELDS));
  assertEquals(missing, [], `spec fields with no entry in FIELDS: ${missing.join(", ")}`);
  const stale = Object.keys(FIELDS).filter((f) => !schemaFields.includes(f));
  assertEquals(stale, [], `FIELDS names fields the schemas lack: ${stale.join(", ")}`);
  const root = new URL("../", import.meta.url);
  const names = new Map<string, string[]>();
  const problems: string[] = [];
  const untested: string[] = [];
  for (const [field, cov] of Object.entries(FIELDS)) {
    if (!Array.isArray(cov)) {
      assert(cov.untested.length > 20, `${field}: say why it has no test`);
      untested.push(`${field}: ${cov.untested}`);
      continue;
    }
    assert(cov.length > 0, `${field}: no test named`);
    for (const { file, test } of cov) {
      if (!names.has(file)) {
        names.set(file, testNames(await Deno.readTextFile(new URL(file, root))));
      }
      if (!names.get(file)!.some((n) => n.startsWith(test))) {
        problems.push(`${field}: no test "${test}" in ${file}`);
      }
    }
  }
  assertEquals(problems, [], problems.join("\n"));
  console.log(
    `${schemaFields.length} spec fields, ${schemaFields.length - untested.length} with tests; ` +
      `without a test (${untested.length}):\n  ${untested.join("\n  ")}`,
  );
});
