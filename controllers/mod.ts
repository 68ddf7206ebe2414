/**
 * lpm's controllers: the manager (informers, controllers, leader election,
 * metrics), the reconcilers of each kind, the client for lpm objects, and
 * the small controller runtime they are built on.
 * @module
 */
export { startManager } from "./manager.ts";
export type { Manager, ManagerOptions } from "./manager.ts";
export { newReconcilerDeps } from "./deps.ts";
export type { ReconcilerDeps } from "./deps.ts";
export type {
  AgentConnector,
  CheckpointRequest,
  CheckpointResult,
  NodeAgent,
  OperationPhase,
  OperationStatus,
  PrepareRestoreRequest,
} from "../contract/agent.ts";
export {
  apiMessage,
  apiStatus,
  controllerRef,
  LPM_GROUP,
  LPM_VERSION,
  LpmClient,
} from "../kube/lpm_client.ts";
export type { LpmObject, LpmPlural } from "../kube/lpm_client.ts";
export { PM_FINALIZER, podMigrationReconciler } from "./pod_migration.ts";
export { podCheckpointReconciler } from "./pod_checkpoint.ts";
export { containerCheckpointReconciler } from "./container_checkpoint.ts";
export { storageClassReconciler } from "./storage_class.ts";
export {
  buildRestoredPod,
  restoredPodName,
  runtimeSupport,
  schedulingMismatch,
  unsupportedReason,
} from "./restored_pod.ts";
export { Controller, keyOf, splitKey, TerminalError } from "./runtime/controller.ts";
export type { Reconcile, ReconcileResult } from "./runtime/controller.ts";
export { WorkQueue } from "./runtime/workqueue.ts";
export { Informer } from "./runtime/informer.ts";
export { LeaderElector } from "./runtime/leader_election.ts";
export { EventRecorder } from "./runtime/events.ts";
export { Logger } from "../base/log.ts";
export { newControllerMetrics } from "./runtime/metrics.ts";
export { kubeHttp } from "../kube/http.ts";
