/**
 * Picks the runtime driver for a node from its container runtime
 * (`status.nodeInfo.containerRuntimeVersion`), overridable by configuration.
 * @module
 */

/** Driver names. */
export type DriverName = "kubelet" | "docker";

/** Inputs of {@linkcode selectDriver}. */
export interface SelectDriverInput {
  /** `status.nodeInfo.containerRuntimeVersion`, e.g. `containerd://2.2.9`. */
  containerRuntimeVersion?: string;
  /** Explicit choice (`--runtime`): wins over everything. */
  override?: DriverName;
  /** A configured Docker socket: the host is a Docker host. */
  dockerSocket?: string;
}

/** The chosen driver and why. */
export interface DriverChoice {
  /** Driver to use. */
  driver: DriverName;
  /** Why, for logs. */
  reason: string;
}

/** Chooses the driver; throws when nothing says which runtime the node has. */
export function selectDriver(input: SelectDriverInput): DriverChoice {
  if (input.override) return { driver: input.override, reason: "configured (--runtime)" };
  const v = input.containerRuntimeVersion ?? "";
  const scheme = v.split("://")[0];
  if (scheme === "containerd" || scheme === "cri-o") {
    return { driver: "kubelet", reason: `node runtime "${v}" supports the kubelet checkpoint API` };
  }
  if (scheme === "docker") return { driver: "docker", reason: `node runtime "${v}"` };
  if (input.dockerSocket) {
    return { driver: "docker", reason: `Docker socket "${input.dockerSocket}" configured` };
  }
  throw new Error(
    `Cannot choose a runtime driver: node runtime "${v}" is not containerd, cri-o or docker ` +
      "and no Docker socket is configured; set --runtime kubelet|docker",
  );
}
