/**
 * Walks a value alongside a structural schema and reports every place they
 * disagree: fields only one side has, wrong types, enums, patterns, bounds.
 * Used by the drift tests (TypeScript samples vs. the CRD schemas).
 * @module
 */
import type { JsonSchema } from "./schema/mod.ts";

/** Every disagreement between `value` and `schema`, as "path: problem" lines. */
export function schemaMismatches(schema: JsonSchema, value: unknown, path = ""): string[] {
  const out: string[] = [];
  const at = path || "<root>";
  switch (schema.type) {
    case "object": {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        return [`${at}: expected an object, got ${JSON.stringify(value)}`];
      }
      const v = value as Record<string, unknown>;
      if (schema.properties) {
        for (const k of Object.keys(v)) {
          if (!(k in schema.properties)) {
            out.push(`${path}.${k}: in the TypeScript type, not the schema`);
          }
        }
        for (const [k, s] of Object.entries(schema.properties)) {
          if (!(k in v)) out.push(`${path}.${k}: in the schema, not the TypeScript type`);
          else out.push(...schemaMismatches(s, v[k], `${path}.${k}`));
        }
      } else if (typeof schema.additionalProperties === "object") {
        for (const [k, x] of Object.entries(v)) {
          out.push(...schemaMismatches(schema.additionalProperties, x, `${path}.${k}`));
        }
      }
      for (const r of schema.required ?? []) {
        if (!(r in v)) out.push(`${path}.${r}: required by the schema but missing`);
      }
      return out;
    }
    case "array":
      if (!Array.isArray(value)) return [`${at}: expected an array`];
      if (value.length === 0) return [`${at}: empty array proves nothing about its items`];
      if (schema.maxItems !== undefined && value.length > schema.maxItems) {
        out.push(`${at}: more than ${schema.maxItems} items`);
      }
      value.forEach((x, i) => out.push(...schemaMismatches(schema.items!, x, `${path}[${i}]`)));
      return out;
    case "string": {
      if (typeof value !== "string") return [`${at}: expected a string`];
      if (schema.enum && !schema.enum.includes(value)) out.push(`${at}: "${value}" not in enum`);
      if (schema.pattern && !new RegExp(schema.pattern).test(value)) {
        out.push(`${at}: "${value}" does not match ${schema.pattern}`);
      }
      if (schema.maxLength !== undefined && value.length > schema.maxLength) {
        out.push(`${at}: longer than ${schema.maxLength}`);
      }
      if (schema.minLength !== undefined && value.length < schema.minLength) {
        out.push(`${at}: shorter than ${schema.minLength}`);
      }
      if (schema.format === "date-time" && Number.isNaN(Date.parse(value))) {
        out.push(`${at}: "${value}" is not a date-time`);
      }
      return out;
    }
    case "integer":
    case "number":
      if (typeof value !== "number" || (schema.type === "integer" && !Number.isInteger(value))) {
        return [`${at}: expected ${schema.type === "integer" ? "an integer" : "a number"}`];
      }
      if (schema.minimum !== undefined && value < schema.minimum) out.push(`${at}: below minimum`);
      if (schema.maximum !== undefined && value > schema.maximum) out.push(`${at}: above maximum`);
      return out;
    case "boolean":
      return typeof value === "boolean" ? [] : [`${at}: expected a boolean`];
    default:
      return [`${at}: schema without a type`];
  }
}
