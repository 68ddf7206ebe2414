/**
 * The parts of the agent that other modules provide (the Docker driver in
 * `runtime/docker.ts`, archive stats in `archive/`), loaded when present so
 * the agent runs on Kubernetes nodes without them. The image publisher is
 * the agent's own (`image_push.ts`).
 * @module
 */
import type { ImagePublisher } from "./pipeline.ts";
import type { CheckpointDriver } from "./runtime/_types.ts";
import { createImagePublisher } from "./image_push.ts";

/** What was found. */
export interface OptionalModules {
  /** Builds the Docker driver for a socket path. */
  createDockerDriver?: (socketPath: string) => CheckpointDriver;
  /** Image publisher. */
  images: ImagePublisher;
  /** CRIU stats reader. */
  readStats?: (archivePath: string) => Promise<Record<string, number> | undefined>;
}

async function tryImport(rel: string): Promise<Record<string, unknown> | undefined> {
  const url = new URL(rel, import.meta.url);
  try {
    await Deno.stat(url);
  } catch {
    return undefined;
  }
  // A computed specifier: these modules are optional at type-check time.
  return await import(url.href) as Record<string, unknown>;
}

/** Loads what is available. */
export async function loadOptionalModules(): Promise<OptionalModules> {
  const out: OptionalModules = { images: createImagePublisher() };
  const docker = await tryImport("./runtime/docker.ts");
  const create = docker?.createDockerDriver as
    | ((o: { socketPath: string }) => CheckpointDriver)
    | undefined;
  if (create) out.createDockerDriver = (socketPath) => create({ socketPath });
  const archive = await tryImport("./archive/mod.ts");
  const stats = archive?.readArchiveStats as
    | ((p: string) => Promise<Record<string, number> | undefined>)
    | undefined;
  if (stats) out.readStats = stats;
  return out;
}
