/**
 * The built-in API calls lpm's long-running processes make (pods, nodes,
 * secrets, events, leases, replica sets), over {@linkcode KubeRest}, with
 * client-node's method names and parameter objects so the code reads the
 * same as with its generated clients, minus the ~85 MiB they cost a process
 * (kubeconfig.ts). Patches are JSON merge patches. Types are client-node's
 * (type-only imports: erased at runtime).
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import { KubeRest } from "./rest.ts";
import type { KubeAccess } from "./kubeconfig.ts";

interface Named {
  name: string;
  namespace: string;
}

const ns = (namespace: string) => `/api/v1/namespaces/${encodeURIComponent(namespace)}`;
const seg = encodeURIComponent;

/** Core (v1), coordination (v1) and apps (v1) calls of the controller and the agent. */
export class CoreClient {
  readonly #rest: KubeRest;

  /** A client on `kc`'s current context, or on an existing {@linkcode KubeRest}. */
  constructor(kc: KubeAccess | KubeRest) {
    this.#rest = kc instanceof KubeRest ? kc : new KubeRest(kc);
  }

  /** GET a Secret. */
  readNamespacedSecret(p: Named): Promise<k8s.V1Secret> {
    return this.#rest.get(`${ns(p.namespace)}/secrets/${seg(p.name)}`);
  }

  /** GET a Pod. */
  readNamespacedPod(p: Named): Promise<k8s.V1Pod> {
    return this.#rest.get(`${ns(p.namespace)}/pods/${seg(p.name)}`);
  }

  /** POST a Pod. */
  createNamespacedPod(p: { namespace: string; body: k8s.V1Pod }): Promise<k8s.V1Pod> {
    return this.#rest.create(`${ns(p.namespace)}/pods`, p.body);
  }

  /** Merge-patch a Pod. */
  patchNamespacedPod(p: Named & { body: unknown }): Promise<k8s.V1Pod> {
    return this.#rest.patch(`${ns(p.namespace)}/pods/${seg(p.name)}`, p.body);
  }

  /** DELETE a Pod (`gracePeriodSeconds` as the delete options say it). */
  deleteNamespacedPod(p: Named & { gracePeriodSeconds?: number }): Promise<k8s.V1Pod> {
    const opts = p.gracePeriodSeconds === undefined
      ? undefined
      : { kind: "DeleteOptions", apiVersion: "v1", gracePeriodSeconds: p.gracePeriodSeconds };
    return this.#rest.delete(`${ns(p.namespace)}/pods/${seg(p.name)}`, opts);
  }

  /** GET a Node. */
  readNode(p: { name: string }): Promise<k8s.V1Node> {
    return this.#rest.get(`/api/v1/nodes/${seg(p.name)}`);
  }

  /** LIST Nodes. */
  listNode(): Promise<k8s.V1NodeList> {
    return this.#rest.get("/api/v1/nodes");
  }

  /** LIST Pods of every namespace. */
  listPodForAllNamespaces(): Promise<k8s.V1PodList> {
    return this.#rest.get("/api/v1/pods");
  }

  /** POST an Event. */
  createNamespacedEvent(p: { namespace: string; body: k8s.CoreV1Event }): Promise<k8s.CoreV1Event> {
    return this.#rest.create(`${ns(p.namespace)}/events`, p.body);
  }

  /** Merge-patch an Event. */
  patchNamespacedEvent(p: Named & { body: unknown }): Promise<k8s.CoreV1Event> {
    return this.#rest.patch(`${ns(p.namespace)}/events/${seg(p.name)}`, p.body);
  }

  /** GET a Lease. */
  readNamespacedLease(p: Named): Promise<k8s.V1Lease> {
    return this.#rest.get(`${leases(p.namespace)}/${seg(p.name)}`);
  }

  /** POST a Lease. */
  createNamespacedLease(p: { namespace: string; body: k8s.V1Lease }): Promise<k8s.V1Lease> {
    return this.#rest.create(leases(p.namespace), p.body);
  }

  /** PUT a Lease (its resourceVersion makes it a compare-and-swap). */
  replaceNamespacedLease(p: Named & { body: k8s.V1Lease }): Promise<k8s.V1Lease> {
    return this.#rest.replace(`${leases(p.namespace)}/${seg(p.name)}`, p.body);
  }

  /** GET a ReplicaSet. */
  readNamespacedReplicaSet(p: Named): Promise<k8s.V1ReplicaSet> {
    return this.#rest.get(
      `/apis/apps/v1/namespaces/${seg(p.namespace)}/replicasets/${seg(p.name)}`,
    );
  }
}

function leases(namespace: string): string {
  return `/apis/coordination.k8s.io/v1/namespaces/${seg(namespace)}/leases`;
}
