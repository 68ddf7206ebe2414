/**
 * Who may restore a checkpoint, and what a restored pod may be. A PodRestore
 * creates a pod with the controller's rights from a spec that came with the
 * checkpoint (stored metadata or image annotations, which other clusters can
 * write), and the checkpoint holds the source's whole memory, secrets
 * included. So, before anything is imported:
 * - a checkpoint restores only into the namespace it was taken in, unless
 *   the class that holds it lists the target namespace (or "*") in
 *   `spec.restore.allowedNamespaces`;
 * - the pod gains nothing a namespace's ordinary user could not ask for:
 *   no privileged or escalating containers, no added capabilities, no host
 *   namespaces or hostPath volumes, no unmasked /proc; and a checkpoint
 *   restored into another namespace runs as that namespace's `default`
 *   service account only (the source's account name there may belong to
 *   someone else).
 * Pure functions: the reconciler reads the class and calls them.
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import type { CheckpointStorageClass } from "../api/mod.ts";

/**
 * Why `targetNs` may not restore a checkpoint taken in `sourceNs`, or
 * undefined when it may. `cls` is the class that holds the checkpoint.
 */
export function namespaceRefusal(
  sourceNs: string | undefined,
  targetNs: string,
  cls: CheckpointStorageClass | undefined,
): string | undefined {
  if (!sourceNs) {
    return `The checkpoint does not say which namespace it was taken in; ` +
      `refusing to restore it into "${targetNs}"`;
  }
  if (sourceNs === targetNs) return undefined;
  const allowed = cls?.spec.restore?.allowedNamespaces ?? [];
  if (allowed.includes("*") || allowed.includes(targetNs)) return undefined;
  return `The checkpoint was taken in namespace "${sourceNs}" and holds its memory; ` +
    `namespace "${targetNs}" may restore it only if CheckpointStorageClass ` +
    `"${cls?.metadata?.name ?? "(none)"}" lists it in spec.restore.allowedNamespaces`;
}

function containerRefusal(c: k8s.V1Container, path: string): string | undefined {
  const sc = c.securityContext;
  if (sc?.privileged) return `${path}.securityContext.privileged is true`;
  if (sc?.allowPrivilegeEscalation) {
    return `${path}.securityContext.allowPrivilegeEscalation is true`;
  }
  if (sc?.capabilities?.add?.length) {
    return `${path}.securityContext.capabilities.add asks for ${
      sc.capabilities.add.map((a) => `"${a}"`).join(", ")
    }`;
  }
  if (sc?.procMount && sc.procMount !== "Default") {
    return `${path}.securityContext.procMount is "${sc.procMount}"`;
  }
  for (const p of c.ports ?? []) {
    if (p.hostPort) return `${path}.ports asks for hostPort ${p.hostPort}`;
  }
  return undefined;
}

/**
 * Why the pod a checkpoint describes may not be created by a PodRestore
 * into `targetNs`, naming the field, or undefined when it may.
 */
export function podSpecRefusal(
  spec: k8s.V1PodSpec | undefined,
  sourceNs: string | undefined,
  targetNs: string,
): string | undefined {
  if (!spec) return "The checkpoint carries no pod spec";
  const why = (() => {
    if (spec.hostNetwork) return "spec.hostNetwork is true";
    if (spec.hostPID) return "spec.hostPID is true";
    if (spec.hostIPC) return "spec.hostIPC is true";
    for (const v of spec.volumes ?? []) {
      if (v.hostPath) return `spec.volumes["${v.name}"] is a hostPath ("${v.hostPath.path}")`;
    }
    const groups: [string, k8s.V1Container[] | undefined][] = [
      ["containers", spec.containers],
      ["initContainers", spec.initContainers],
      ["ephemeralContainers", spec.ephemeralContainers as k8s.V1Container[] | undefined],
    ];
    for (const [field, list] of groups) {
      for (const c of list ?? []) {
        const r = containerRefusal(c, `spec.${field}["${c.name}"]`);
        if (r) return r;
      }
    }
    const sa = spec.serviceAccountName ?? spec.serviceAccount;
    if (sourceNs !== targetNs && sa && sa !== "default") {
      return `spec.serviceAccountName is "${sa}": a checkpoint restored into another namespace ` +
        `("${targetNs}", taken in "${sourceNs}") runs as that namespace's "default" account only`;
    }
    return undefined;
  })();
  return why ? `The restored pod would gain privileges: ${why}` : undefined;
}
