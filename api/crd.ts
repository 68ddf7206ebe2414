/**
 * Turns a kind's definition into its CustomResourceDefinition object.
 * @module
 */
import { GROUP, VERSION } from "./types.ts";
import type { JsonSchema, KindDefinition } from "./schema/mod.ts";

/** Category every lpm kind is in: `kubectl get lpm` lists them all. */
export const CATEGORY = "lpm";

/** The apiextensions.k8s.io/v1 CustomResourceDefinition of `def`. */
export function crdFor(def: KindDefinition): Record<string, unknown> {
  const metadata: JsonSchema = { type: "object" };
  if (def.maxNameLength) {
    metadata.properties = { name: { type: "string", maxLength: def.maxNameLength } };
  }
  const root: JsonSchema = {
    type: "object",
    description: def.description,
    properties: {
      apiVersion: {
        type: "string",
        description: "APIVersion defines the versioned schema of this representation of an object.",
      },
      kind: {
        type: "string",
        description:
          "Kind is a string value representing the REST resource this object represents.",
      },
      metadata,
      spec: def.spec,
      status: def.status,
    },
    required: ["spec"],
  };
  if (def.rules?.length) root["x-kubernetes-validations"] = def.rules;
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${def.plural}.${GROUP}` },
    spec: {
      group: GROUP,
      names: {
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        singular: def.singular,
        shortNames: def.shortNames,
        categories: [CATEGORY],
      },
      scope: def.namespaced ? "Namespaced" : "Cluster",
      versions: [{
        name: VERSION,
        served: true,
        storage: true,
        schema: { openAPIV3Schema: root },
        subresources: { status: {} },
        additionalPrinterColumns: def.printerColumns,
      }],
    },
  };
}
