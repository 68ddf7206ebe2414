/**
 * Keeps the base images warm on the target before the freeze. A checkpoint
 * image holds only the container's memory and rootfs changes: to restore it,
 * the target's runtime needs the container's own image too, and containerd
 * pulls it inside the restored container's creation when the node lacks it,
 * which is downtime (the source is frozen by then). When a migration is
 * admitted, the controller asks the target's agent to pull the source
 * pod's images through PrepareRestore, by the digest the source's runtime
 * resolved (the name containerd's restore asks for), and does not wait: a
 * pull that fails (a private registry the agent has no credentials for)
 * costs nothing but leaves the pull where it was, inside the restore.
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import type { PodMigration } from "../api/mod.ts";
import type { AgentConnector } from "../contract/agent.ts";
import { loopbackHost } from "../oci/mod.ts";

/** One image to warm: the container it is for and the reference to pull. */
export interface WarmImage {
  /** Container name. */
  container: string;
  /** `repo@sha256:...` from the container's status when known, else the spec's image. */
  image: string;
}

/** The images of `pod`'s containers, by the digest its runtime resolved when it says. */
export function warmImageRefs(pod: k8s.V1Pod): WarmImage[] {
  const resolved = new Map(
    (pod.status?.containerStatuses ?? []).map((s) => [s.name, s.imageID ?? ""]),
  );
  return (pod.spec?.containers ?? []).filter((c) => !!c.image).map((c) => {
    const id = (resolved.get(c.name) ?? "").replace(/^docker-pullable:\/\//, "");
    return { container: c.name, image: /^[^@\s]+@sha256:[0-9a-f]{64}$/.test(id) ? id : c.image! };
  });
}

/**
 * Starts pulling `pod`'s images on `targetNode` (operation ids
 * `<migration uid>-warm-<container>`), without waiting; a failure goes to
 * `onError` (the agent also records it on its operation).
 */
export function warmBaseImages(
  agents: AgentConnector,
  pm: PodMigration,
  pod: k8s.V1Pod,
  opts: { targetNode: string; onError?: (err: unknown) => void },
): void {
  const uid = pm.metadata?.uid;
  if (!uid) return;
  (async () => {
    const agent = await agents.forNode(opts.targetNode);
    for (const w of warmImageRefs(pod)) {
      await agent.prepareRestore({
        operationId: `${uid}-warm-${w.container}`,
        image: w.image,
        // A plain-HTTP registry is only ever accepted on loopback (oci/insecure.ts).
        insecure: loopbackHost(w.image.split("/")[0]),
      });
    }
  })().catch((err) => opts.onError?.(err));
}
