/**
 * Small builders for OpenAPI v3 structural schemas, so each kind's schema
 * reads like its type: `obj({ podName: str(...) }, { required: [...] })`.
 * @module
 */

/** A CEL rule (`x-kubernetes-validations` entry). */
export interface CelRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  /** JSONPath-like path (".spec.s3") the error is reported on. */
  fieldPath?: string;
  reason?:
    | "FieldValueInvalid"
    | "FieldValueForbidden"
    | "FieldValueRequired"
    | "FieldValueDuplicate";
  optionalOldSelf?: boolean;
}

/** The subset of OpenAPI v3 that structural CRD schemas use. */
export interface JsonSchema {
  type?: "object" | "array" | "string" | "integer" | "number" | "boolean";
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: JsonSchema | boolean;
  items?: JsonSchema;
  enum?: (string | number)[];
  format?: string;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  maxProperties?: number;
  default?: unknown;
  "x-kubernetes-validations"?: CelRule[];
  "x-kubernetes-list-type"?: "atomic" | "set" | "map";
  "x-kubernetes-list-map-keys"?: string[];
  "x-kubernetes-map-type"?: "atomic" | "granular";
}

/** Options common to every builder. */
export interface Common {
  default?: unknown;
  rules?: CelRule[];
}

function finish(s: JsonSchema, o: Common): JsonSchema {
  if (o.default !== undefined) s.default = o.default;
  if (o.rules?.length) s["x-kubernetes-validations"] = o.rules;
  return s;
}

/** A string. */
export function str(
  description: string,
  o: Common & { pattern?: string; minLength?: number; maxLength?: number; format?: string } = {},
): JsonSchema {
  const s: JsonSchema = { type: "string", description };
  if (o.format) s.format = o.format;
  if (o.pattern) s.pattern = o.pattern;
  if (o.minLength !== undefined) s.minLength = o.minLength;
  if (o.maxLength !== undefined) s.maxLength = o.maxLength;
  return finish(s, o);
}

/** A string from a fixed set. */
export function oneOf(description: string, values: readonly string[], o: Common = {}): JsonSchema {
  return finish({ type: "string", description, enum: [...values] }, o);
}

/** An RFC 3339 timestamp. */
export function dateTime(description: string): JsonSchema {
  return { type: "string", format: "date-time", description };
}

/** An integer (int64). */
export function int(
  description: string,
  o: Common & { minimum?: number; maximum?: number } = {},
): JsonSchema {
  const s: JsonSchema = { type: "integer", format: "int64", description };
  if (o.minimum !== undefined) s.minimum = o.minimum;
  if (o.maximum !== undefined) s.maximum = o.maximum;
  return finish(s, o);
}

/** A boolean. */
export function bool(description: string, o: Common = {}): JsonSchema {
  return finish({ type: "boolean", description }, o);
}

/** An object with known properties. */
export function obj(
  description: string,
  properties: Record<string, JsonSchema>,
  o: Common & { required?: string[] } = {},
): JsonSchema {
  const s: JsonSchema = { type: "object", description, properties };
  if (o.required?.length) {
    for (const r of o.required) {
      if (!(r in properties)) throw new Error(`Required property "${r}" is not a property`);
    }
    s.required = o.required;
  }
  return finish(s, o);
}

/** A map from string keys to `values`. */
export function map(
  description: string,
  values: JsonSchema,
  o: Common & { maxProperties?: number } = {},
): JsonSchema {
  const s: JsonSchema = { type: "object", description, additionalProperties: values };
  if (o.maxProperties !== undefined) s.maxProperties = o.maxProperties;
  return finish(s, o);
}

/** An array; `mapKeys` makes it a list-map merged by those keys. */
export function arr(
  description: string,
  items: JsonSchema,
  o: Common & {
    maxItems?: number;
    minItems?: number;
    mapKeys?: string[];
    set?: boolean;
  } = {},
): JsonSchema {
  const s: JsonSchema = { type: "array", description, items };
  if (o.minItems !== undefined) s.minItems = o.minItems;
  if (o.maxItems !== undefined) s.maxItems = o.maxItems;
  if (o.mapKeys) {
    s["x-kubernetes-list-type"] = "map";
    s["x-kubernetes-list-map-keys"] = o.mapKeys;
  } else if (o.set) {
    s["x-kubernetes-list-type"] = "set";
  }
  return finish(s, o);
}

/** A CEL rule. */
export function rule(
  text: string,
  message: string,
  o: Omit<CelRule, "rule" | "message"> = {},
): CelRule {
  return { rule: text, message, ...o };
}

/** DNS-1123 subdomain (pod, node and storage class names): at most 253 characters. */
export const DNS_SUBDOMAIN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/** DNS-1123 label (container names): at most 63 characters. */
export const DNS_LABEL = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/** A DNS-1123 subdomain name (pods, nodes, classes). */
export function subdomainName(description: string, o: Common = {}): JsonSchema {
  return str(description, { ...o, pattern: DNS_SUBDOMAIN, minLength: 1, maxLength: 253 });
}

/** A DNS-1123 label name (containers). */
export function labelName(description: string, o: Common = {}): JsonSchema {
  return str(description, { ...o, pattern: DNS_LABEL, minLength: 1, maxLength: 63 });
}
