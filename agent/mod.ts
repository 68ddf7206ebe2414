/**
 * The lpm node agent: a gRPC service (`agent.proto`, `lpm.agent.v1.Agent`)
 * served only over mutual TLS, persistent operations, the checkpoint
 * pipeline, runtime drivers, and the controller-side client and discovery.
 * The process entry point is `main.ts` (`deno task agent`).
 * @module
 */
export { AgentClient, GrpcAgentConnector, toOperationStatus } from "../contract/client.ts";
export type {
  AgentClientOptions,
  ClientSecurity,
  GrpcAgentConnectorOptions,
} from "../contract/client.ts";
export {
  AGENT_LABEL,
  AGENT_NAMESPACE,
  AGENT_PORT,
  parseOverrides,
  resolveAgent,
} from "../contract/discovery.ts";
export type { AgentPod, PodLister, ResolveAgentOptions } from "../contract/discovery.ts";
export { AGENT_VERSION, startAgentServer } from "./server.ts";
export type { AgentSecurity, AgentServer, AgentServerOptions, ClassResolver } from "./server.ts";
export { isFinal, OperationConflictError, OperationStore } from "./operations.ts";
export type { Operation, OperationKind } from "./operations.ts";
export type { CheckpointResult, OperationPhase } from "../contract/agent.ts";
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
