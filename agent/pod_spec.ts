/**
 * The pod spec that travels with a checkpoint (in the metadata JSON and as
 * the `lpm.my.domain/pod-spec` image annotation): enough to recreate the pod
 * in any cluster, without what belongs to the source cluster's copy.
 * @module
 */

/** Annotations that describe the source object, not the workload. */
const DROPPED_ANNOTATIONS = ["kubectl.kubernetes.io/last-applied-configuration"];

/**
 * Reduces a pod (JSON) to `apiVersion`, `kind`, `metadata` (name, namespace,
 * labels, annotations, ownerReferences) and `spec`; drops status, uid,
 * resourceVersion, managedFields and the last-applied annotation. Returns
 * undefined for an empty input; throws when the input is not a JSON object.
 */
export function portablePod(podJson: string | undefined): Record<string, unknown> | undefined {
  if (!podJson) return undefined;
  const pod = JSON.parse(podJson);
  if (!pod || typeof pod !== "object" || Array.isArray(pod)) {
    throw new Error("The source pod JSON is not an object");
  }
  const m = pod.metadata ?? {};
  const annotations = { ...m.annotations };
  for (const k of DROPPED_ANNOTATIONS) delete annotations[k];
  const metadata: Record<string, unknown> = { name: m.name, namespace: m.namespace };
  if (m.labels && Object.keys(m.labels).length) metadata.labels = m.labels;
  if (Object.keys(annotations).length) metadata.annotations = annotations;
  if (m.ownerReferences?.length) metadata.ownerReferences = m.ownerReferences;
  return { apiVersion: pod.apiVersion ?? "v1", kind: pod.kind ?? "Pod", metadata, spec: pod.spec };
}
