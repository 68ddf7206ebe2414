/**
 * The lpm.my.domain/v1 API: types, constants and helpers.
 * @module
 */
export * from "./types.ts";
