/**
 * The local environment: starts the real parts (etcd + kube-apiserver +
 * controller-manager + scheduler, MinIO, an OCI registry, a dockerd with
 * CRIU, kubelet + containerd nodes, lpm itself) for `cluster:up`, the demo
 * and the tests.
 * @module
 */
export * from "./environment.ts";
export * from "./info.ts";
export { installCrds, kubectl } from "./control_plane.ts";
export type { ControlPlaneInfo } from "./control_plane.ts";
export { minioS3Client, minioServer } from "./minio.ts";
export type { MinioInfo } from "./minio.ts";
export { startRegistry } from "./registry.ts";
export type { RegistryInfo, RegistryOptions } from "./registry.ts";
export { ctr, ctrTasks, registryHostsToml } from "./containerd.ts";
export type { DockerInfo } from "./dockerd.ts";
export { Pki } from "./pki.ts";
export { cacheDir, tool, toolPath } from "./tools.ts";
export { freePort, waitFor } from "./_wait.ts";
export { buildBusyboxRootfsTar, counterScript } from "./images.ts";
export { createMinioClass, createNamespace } from "./workspace.ts";
export type { MinioClassOptions } from "./workspace.ts";
export { nodeName, pushNodeImages, startNodes } from "./node.ts";
export type { NodeImages, NodeInfo, Nodes, NodesOptions } from "./node.ts";
export { pushImage } from "./registry_push.ts";
export type { PushedImage, PushImageOptions } from "./registry_push.ts";
export { buildWorkloadRootfs, pushWorkloadImage } from "./workload_images.ts";
export type { WorkloadImageSpec } from "./workload_images.ts";
export { environmentFaults, partLogName } from "./faults.ts";
export type { FaultPart, Faults } from "./faults.ts";
