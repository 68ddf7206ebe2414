/**
 * The lpm node agent: a gRPC service (`agent.proto`, `lpm.agent.v1.Agent`)
 * served only over mutual TLS, persistent operations, the checkpoint
 * pipeline, runtime drivers and the pod freeze. Its callers' side (client,
 * discovery, the contract types) is in `contract/`.
 * The process entry point is `main.ts` (`deno task agent`).
 * @module
 */
export { AGENT_VERSION, startAgentServer } from "./server.ts";
export type { AgentSecurity, AgentServer, AgentServerOptions, ClassResolver } from "./server.ts";
export { isFinal, OperationConflictError, OperationStore } from "./operations.ts";
export type { Operation, OperationKind } from "./operations.ts";
export { imageTag, runCheckpoint } from "./pipeline.ts";
export type {
  CheckpointJob,
  ImagePublisher,
  PipelineDeps,
  PushedImage,
  RegistrySettings,
  ResolvedClass,
} from "./pipeline.ts";
export { createImagePublisher } from "./image_push.ts";
export { createOciImagePublisher } from "./image_oci.ts";
export type { OciImagePublisherOptions } from "./image_oci.ts";
export { registryCredentials, resolveStorageClass } from "./storage_class.ts";
export { prepareImage } from "./prepare.ts";
export {
  createClientTls,
  createServerTls,
  DEFAULT_SERVER_NAME,
  identityOf,
  isAllowed,
} from "../contract/tls.ts";
export type { PeerIdentity, TlsFiles } from "../contract/tls.ts";
export { createKubeletDriver, kubeletHint } from "./runtime/kubelet.ts";
export type { KubeletAccess, KubeletDriverOptions } from "./runtime/kubelet.ts";
export { selectDriver } from "./runtime/select.ts";
export type { DriverChoice, DriverName } from "./runtime/select.ts";
