/**
 * What a kind needs to become a CustomResourceDefinition.
 * @module
 */
import type { JsonSchema } from "./_helpers.ts";

/** A printer column (`kubectl get`). */
export interface PrinterColumn {
  name: string;
  type: "string" | "integer" | "number" | "boolean" | "date";
  jsonPath: string;
  description?: string;
  priority?: number;
}

/** One kind: names, scope, spec and status schemas, printer columns. */
export interface KindDefinition {
  kind: string;
  plural: string;
  singular: string;
  namespaced: boolean;
  shortNames: string[];
  description: string;
  spec: JsonSchema;
  status: JsonSchema;
  printerColumns: PrinterColumn[];
  /**
   * Longest `metadata.name`: these objects' names end up in label values
   * (63 characters), so they are limited here rather than failing later.
   */
  maxNameLength?: number;
  /** CEL rules on the whole object (they may read metadata.name). */
  rules?: JsonSchema["x-kubernetes-validations"];
}
