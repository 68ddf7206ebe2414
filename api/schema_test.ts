import { assertEquals } from "@std/assert";
import { schemaMismatches } from "./_schema_walk.ts";
import { FULL_OBJECTS } from "./samples.ts";
import { KIND_DEFINITIONS } from "./schema/mod.ts";
import type {
  CheckpointStorageClassSpec,
  ContainerCheckpointSpec,
  PodCheckpointSpec,
  PodMigrationSpec,
  PodRestoreSpec,
} from "./types.ts";

for (const def of KIND_DEFINITIONS) {
  Deno.test(`api: ${def.kind} TypeScript type and schema have the same fields (spec and status)`, () => {
    const full = FULL_OBJECTS[def.kind as keyof typeof FULL_OBJECTS];
    assertEquals(schemaMismatches(def.spec, full.spec, ".spec"), []);
    assertEquals(schemaMismatches(def.status, full.status, ".status"), []);
  });
}

Deno.test("api: the walker notices a field the schema lacks, a missing one and a wrong type", () => {
  const def = KIND_DEFINITIONS.find((d) => d.kind === "PodMigration")!;
  const spec = { ...FULL_OBJECTS.PodMigration.spec, extra: 1, timeoutSeconds: "600" } as Record<
    string,
    unknown
  >;
  delete spec.bandwidthLimit;
  assertEquals(schemaMismatches(def.spec, spec, ".spec").sort(), [
    ".spec.bandwidthLimit: in the schema, not the TypeScript type",
    ".spec.extra: in the TypeScript type, not the schema",
    ".spec.timeoutSeconds: expected an integer",
  ]);
});

/** Keys of `T` that are not optional. */
type RequiredKeys<T> = { [K in keyof T]-?: undefined extends T[K] ? never : K }[keyof T];
/** Compiles only when `A` and `B` are the same union. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

// Type-level: the TypeScript required fields, written once more here; the
// test below checks the schemas' `required` against the same lists.
const REQUIRED = {
  CheckpointStorageClass: ["provider"],
  PodMigration: ["podName"],
  PodCheckpoint: ["podName"],
  ContainerCheckpoint: ["podName", "containerName"],
  PodRestore: ["source"],
} as const;
const _csc: Same<
  RequiredKeys<CheckpointStorageClassSpec>,
  typeof REQUIRED.CheckpointStorageClass[number]
> = true;
const _pm: Same<RequiredKeys<PodMigrationSpec>, typeof REQUIRED.PodMigration[number]> = true;
const _pc: Same<RequiredKeys<PodCheckpointSpec>, typeof REQUIRED.PodCheckpoint[number]> = true;
const _cc: Same<
  RequiredKeys<ContainerCheckpointSpec>,
  typeof REQUIRED.ContainerCheckpoint[number]
> = true;
const _pr: Same<RequiredKeys<PodRestoreSpec>, typeof REQUIRED.PodRestore[number]> = true;

Deno.test("api: required spec fields agree between the TypeScript types and the schemas", () => {
  for (const def of KIND_DEFINITIONS) {
    assertEquals(def.spec.required, [...REQUIRED[def.kind as keyof typeof REQUIRED]], def.kind);
  }
});

Deno.test("api: every kind has a short name, a status and printer columns ending in Age", () => {
  for (const def of KIND_DEFINITIONS) {
    assertEquals(def.shortNames.length, 1, def.kind);
    assertEquals(def.status.type, "object");
    assertEquals(def.printerColumns.at(-1)?.name, "Age", def.kind);
  }
});
