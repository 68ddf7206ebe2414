/**
 * The node agent's contract, shared by the agent and its callers
 * (controllers, CLIs): the wire format (`agent.proto`, `lpm.agent.v1.Agent`),
 * the `AgentConnector` interface and operation types, the gRPC client, mutual
 * TLS, and how a node's agent is found.
 * @module
 */
export type {
  AgentConnector,
  CheckpointRequest,
  CheckpointResult,
  FreezeRef,
  FreezeStatus,
  NodeAgent,
  NodeAgentHealth,
  OperationPhase,
  OperationStatus,
  PrepareRestoreRequest,
} from "./agent.ts";
export { agentHealthWithin, askAgentWithin } from "./agent.ts";
export { AgentClient, GrpcAgentConnector, toOperationStatus } from "./client.ts";
export type { AgentClientOptions, ClientSecurity, GrpcAgentConnectorOptions } from "./client.ts";
export {
  AGENT_LABEL,
  AGENT_NAMESPACE,
  AGENT_PORT,
  parseOverrides,
  resolveAgent,
} from "./discovery.ts";
export type { AgentPod, PodLister, ResolveAgentOptions } from "./discovery.ts";
export { createClientTls, createServerTls, DEFAULT_SERVER_NAME, identityOf } from "./tls.ts";
export type { ClientTls, ClientTlsOptions, PeerIdentity, ServerTls, TlsFiles } from "./tls.ts";
