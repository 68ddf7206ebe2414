/** The description of a running local environment, as written to its `info.json`. @module */
import type { ControlPlaneInfo } from "./control_plane.ts";
import type { MinioInfo } from "./minio.ts";
import type { RegistryInfo } from "./registry.ts";
import type { DockerInfo } from "./dockerd.ts";
import type { NodeImages, NodeInfo } from "./node.ts";

/** The parts the environment can start. */
export type Part = "kube" | "minio" | "registry" | "docker";

/** Every part, in start order. */
export const ALL_PARTS: readonly Part[] = ["kube", "minio", "registry", "docker"];

/** Serializable description of a running environment (written to `info.json`). */
export interface EnvironmentInfo {
  /** Root directory of all data and logs. */
  dir: string;
  /** Where each part logs. */
  logDir: string;
  /** Parts that run. */
  parts: Part[];
  /** pids of the processes started (process-group leaders). */
  pids: number[];
  /** Extra directories owned by the environment outside `dir`. */
  extraDirs: string[];
  /** Control plane, when "kube" runs. */
  kube?: ControlPlaneInfo;
  /** MinIO, when "minio" runs. */
  minio?: MinioInfo;
  /** OCI registry, when "registry" runs. */
  registry?: RegistryInfo;
  /** Docker engine, when "docker" runs. */
  docker?: DockerInfo;
  /** lpm's agents and controller, when `lpm` was asked for. */
  lpm?: LpmInfo;
  /** lpm deployed into the cluster from its own images (`--in-cluster`). */
  lpmInCluster?: InClusterInfo;
  /** Worker nodes (kubelet + containerd), when `nodes` was asked for. */
  nodes?: NodeInfo[];
  /** Images the nodes use (pause, busybox), in the harness registry. */
  nodeImages?: NodeImages;
}

/** What runs of lpm. */
export interface LpmInfo {
  /** One agent per node. */
  agents: { node: string; address: string; pid: number; stateDir: string }[];
  /** The controller manager. */
  controller: { pid: number; healthPort: number };
  /** mTLS material: the CA, the controller's client pair (for tests and CLIs that call agents). */
  tls: { ca: string; controllerCert: string; controllerKey: string };
}

/** lpm installed in the cluster by `kubectl apply -k` (localenv/in_cluster.ts). */
export interface InClusterInfo {
  /** The kustomization applied. */
  kustomization: string;
  /** The images pushed to the environment's registry. */
  images: { name: string; reference: string; tagged: string }[];
  /** Compressed image sizes in bytes, by image name. */
  sizes: Record<string, number>;
  /** Seconds to build (or take from the cache) and push the images. */
  buildSeconds: number;
  /** Seconds from `kubectl apply -k` to every lpm pod Ready. */
  installSeconds: number;
}
