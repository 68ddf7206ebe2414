/**
 * When a pod's containers started, as the node's runtime recorded it (CRI
 * RuntimeService, nanoseconds). The kubelet's pod status rounds `startedAt`
 * down to the second; a migration's downtime is measured to the millisecond
 * from the freeze of the source to this instant on the target.
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const PROTO_PATH = new URL("./cri_image.proto", import.meta.url).pathname;

let service: grpc.ServiceClientConstructor | undefined;

function runtimeService(): grpc.ServiceClientConstructor {
  if (service) return service;
  const def = protoLoader.loadSync(PROTO_PATH, { defaults: true, longs: String, enums: String });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    runtime: { v1: { RuntimeService: grpc.ServiceClientConstructor } };
  };
  return service = pkg.runtime.v1.RuntimeService;
}

/** A running container of a pod and when it started. */
export interface ContainerStart {
  /** Container name in the pod. */
  name: string;
  /** Runtime container id. */
  id: string;
  /** Epoch milliseconds (with the fraction the runtime gives). */
  startedAtMs: number;
}

// deno-lint-ignore no-explicit-any
type Client = any;

function call<T>(client: Client, method: string, req: unknown, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    client[method](req, { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError, res: T) => {
      if (err) reject(new Error(`CRI ${method} failed: ${err.details || err.message}`));
      else resolve(res);
    });
  });
}

/**
 * The running containers of pod `namespace/pod` on the runtime at `endpoint`
 * (`unix:///run/containerd/containerd.sock`), each with its start time.
 */
export async function criContainerStarts(
  endpoint: string,
  namespace: string,
  pod: string,
  opts: { timeoutMs?: number } = {},
): Promise<ContainerStart[]> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const Service = runtimeService();
  const client = new Service(
    endpoint.replace(/^unix:\/\/(?=\/)/, "unix:"),
    grpc.credentials.createInsecure(),
  );
  try {
    const list = await call<{ containers: { id: string; state: string }[] }>(
      client,
      "ListContainers",
      {
        filter: {
          state: { state: "CONTAINER_RUNNING" },
          labelSelector: {
            "io.kubernetes.pod.namespace": namespace,
            "io.kubernetes.pod.name": pod,
          },
        },
      },
      timeoutMs,
    );
    const out: ContainerStart[] = [];
    for (const c of list.containers ?? []) {
      const s = await call<
        { status?: { metadata?: { name?: string }; startedAt?: string } }
      >(client, "ContainerStatus", { containerId: c.id }, timeoutMs);
      const ns = BigInt(s.status?.startedAt ?? "0");
      if (ns === 0n) continue;
      out.push({
        name: s.status?.metadata?.name ?? "",
        id: c.id,
        // Milliseconds with microsecond precision: exact enough, and a safe Number.
        startedAtMs: Number(ns / 1000n) / 1000,
      });
    }
    return out;
  } finally {
    client.close();
  }
}
