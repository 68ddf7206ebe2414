/**
 * An Event recorder: every phase change and notable step of a reconcile is
 * told to people through core/v1 Events on the object, as `kubectl describe`
 * shows them. Repeats of the same event within a short window are counted on
 * the existing Event instead of creating new ones.
 * @module
 */
import { Logger } from "../../base/log.ts";
import { CoreClient } from "../../kube/core_client.ts";
import type { KubeAccess } from "../../kube/kubeconfig.ts";
import type { KubeRest } from "../../kube/rest.ts";

/** The object an event is about. */
export interface EventTarget {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
  };
}

/** Records Events for one component. */
export class EventRecorder {
  readonly #api: CoreClient;
  readonly #seen = new Map<
    string,
    { name: string; namespace: string; count: number; at: number }
  >();

  readonly #quiet: (obj: EventTarget) => boolean;

  /**
   * Creates a recorder that signs events as `component`. Normal events about
   * objects `quiet` picks are not recorded (only logged at debug level):
   * an object whose story another object's Events already tell.
   */
  constructor(
    kc: KubeAccess | KubeRest,
    readonly component: string,
    readonly log: Logger = new Logger(),
    opts: { quiet?: (obj: EventTarget) => boolean } = {},
  ) {
    this.#api = new CoreClient(kc);
    this.#quiet = opts.quiet ?? (() => false);
  }

  /** Records a Normal event (unless the object is quiet). Never throws: events are best effort. */
  normal(obj: EventTarget, reason: string, message: string): Promise<void> {
    if (this.#quiet(obj)) {
      this.log.debug("event not recorded (quiet object)", { kind: obj.kind, reason, message });
      return Promise.resolve();
    }
    return this.#record(obj, "Normal", reason, message);
  }

  /** Records a Warning event. Never throws. */
  warning(obj: EventTarget, reason: string, message: string): Promise<void> {
    return this.#record(obj, "Warning", reason, message);
  }

  async #record(obj: EventTarget, type: string, reason: string, message: string): Promise<void> {
    const meta = obj.metadata ?? {};
    const namespace = meta.namespace || "default";
    const key = `${meta.uid}/${type}/${reason}/${message}`;
    const now = new Date();
    try {
      const prev = this.#seen.get(key);
      if (prev && now.getTime() - prev.at < 10 * 60_000) {
        prev.count++;
        prev.at = now.getTime();
        await this.#api.patchNamespacedEvent(
          {
            name: prev.name,
            namespace: prev.namespace,
            body: { count: prev.count, lastTimestamp: now },
          },
        );
        return;
      }
      const name = `${meta.name}.${now.getTime().toString(16)}${
        Math.floor(Math.random() * 0xffff).toString(16)
      }`;
      await this.#api.createNamespacedEvent({
        namespace,
        body: {
          metadata: { name, namespace },
          involvedObject: {
            apiVersion: obj.apiVersion,
            kind: obj.kind,
            name: meta.name,
            namespace: meta.namespace,
            uid: meta.uid,
            resourceVersion: meta.resourceVersion,
          },
          type,
          reason,
          message: message.slice(0, 1024),
          source: { component: this.component },
          reportingComponent: this.component,
          reportingInstance: Deno.hostname(),
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
      this.#seen.set(key, { name, namespace, count: 1, at: now.getTime() });
      if (this.#seen.size > 5000) this.#seen.delete(this.#seen.keys().next().value!);
    } catch (err) {
      this.log.warn("could not record event", { err, reason });
    }
  }
}
