/**
 * Finding a node's agent by node name: an explicit override map first
 * (`node=host:port`, for development and agents running as host processes),
 * else the Ready agent DaemonSet pod (label `app.kubernetes.io/name=lpm-agent`
 * in `lpm-system`) whose `spec.nodeName` is the node, at `podIP:port` (the
 * DaemonSet uses hostNetwork, so that is the node's IP).
 * @module
 */

/** Label of the agent pods. */
export const AGENT_LABEL = "app.kubernetes.io/name=lpm-agent";
/** Namespace of the agent DaemonSet. */
export const AGENT_NAMESPACE = "lpm-system";
/** Port the agent listens on in the DaemonSet. */
export const AGENT_PORT = 7443;

/** The pod fields discovery reads. */
export interface AgentPod {
  metadata?: {
    name?: string;
    namespace?: string;
    labels?: Record<string, string>;
    deletionTimestamp?: unknown;
  };
  spec?: { nodeName?: string };
  status?: { podIP?: string; phase?: string; conditions?: { type: string; status: string }[] };
}

/** What discovery needs from a Kubernetes client (CoreV1Api satisfies it). */
export interface PodLister {
  listNamespacedPod(
    req: { namespace: string; labelSelector?: string; fieldSelector?: string },
  ): Promise<{ items: AgentPod[] }>;
}

/**
 * Agent pods kept current by a watch (the controller's informer on the agent
 * pods): resolving reads memory instead of listing pods at every call.
 */
export interface AgentPodCache {
  /** The cached pods of `namespace`. */
  list(namespace?: string): readonly AgentPod[];
}

/** Options for {@linkcode resolveAgent}. */
export interface ResolveAgentOptions {
  /** `node -> host:port` overrides (win over the cluster). */
  overrides?: Record<string, string>;
  /** Namespace of the agent pods (default {@linkcode AGENT_NAMESPACE}). */
  namespace?: string;
  /** Label selector (default {@linkcode AGENT_LABEL}). */
  labelSelector?: string;
  /** Port (default {@linkcode AGENT_PORT}). */
  port?: number;
}

/** Parses `a=host:port,b=host:port` (or repeated flags) into a map. */
export function parseOverrides(specs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of specs.flatMap((x) => x.split(",")).filter(Boolean)) {
    const m = /^([^=]+)=(.+:\d+)$/.exec(s.trim());
    if (!m) throw new Error(`Agent override "${s}" is invalid: expected "<node>=<host>:<port>"`);
    out[m[1]] = m[2];
  }
  return out;
}

function selected(p: AgentPod, selector: string): boolean {
  return selector.split(",").map((t) => t.trim()).filter(Boolean).every((t) => {
    const [k, v] = t.split("=");
    return v === undefined ? k in (p.metadata?.labels ?? {}) : p.metadata?.labels?.[k] === v;
  });
}

/**
 * Returns `host:port` of the agent on `nodeName`, or throws saying why there
 * is none. `kube` is a cache of the agent pods (read from memory) or a
 * client that lists them (one request per call: for one-shot tools).
 */
export async function resolveAgent(
  kube: PodLister | AgentPodCache | undefined,
  nodeName: string,
  opts: ResolveAgentOptions = {},
): Promise<string> {
  const override = opts.overrides?.[nodeName];
  if (override) return override;
  const namespace = opts.namespace ?? AGENT_NAMESPACE;
  if (!kube) {
    throw new Error(`No agent address for node "${nodeName}": no override and no cluster client`);
  }
  const selector = opts.labelSelector ?? AGENT_LABEL;
  const items = "listNamespacedPod" in kube
    ? (await kube.listNamespacedPod({
      namespace,
      labelSelector: selector,
      fieldSelector: `spec.nodeName=${nodeName}`,
    })).items
    : kube.list(namespace).filter((p) => selected(p, selector));
  const pods = items.filter((p) => p.spec?.nodeName === nodeName && !p.metadata?.deletionTimestamp);
  if (pods.length === 0) {
    throw new Error(
      `No agent pod on node "${nodeName}" in namespace "${namespace}" ` +
        `(selector "${
          opts.labelSelector ?? AGENT_LABEL
        }"): is the lpm-agent DaemonSet scheduled there?`,
    );
  }
  const ready = pods.find((p) =>
    p.status?.podIP &&
    p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True")
  );
  if (!ready) {
    throw new Error(
      `The agent pod "${namespace}/${pods[0].metadata?.name}" on node "${nodeName}" is not Ready ` +
        `(phase "${pods[0].status?.phase ?? "Unknown"}")`,
    );
  }
  const ip = ready.status!.podIP!;
  return `${ip.includes(":") ? `[${ip}]` : ip}:${opts.port ?? AGENT_PORT}`;
}
