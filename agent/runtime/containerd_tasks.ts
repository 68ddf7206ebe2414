/**
 * A small client of a node's containerd (gRPC over its unix socket, in the
 * CRI plugin's namespace `k8s.io`): find a pod's containers by the labels the
 * CRI plugin sets, and read, pause, resume and kill their tasks. Going
 * through containerd (not `runc` or the cgroup freezer behind its back) keeps
 * the shim's state machine right: a task paused here is `PAUSED` to
 * containerd, and containerd's own checkpoint then dumps it without pausing
 * and resuming it around the dump (see `freeze.ts`). Uses minimal copies of
 * containerd's messages (`containerd_tasks.proto`, `containerd_containers.proto`).
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const TASKS_PROTO = new URL("./containerd_tasks.proto", import.meta.url).pathname;
const CONTAINERS_PROTO = new URL("./containerd_containers.proto", import.meta.url).pathname;

/** A task's state as containerd reports it; `absent` when the container has no task. */
export type TaskStatus =
  | "unknown"
  | "created"
  | "running"
  | "stopped"
  | "paused"
  | "pausing"
  | "absent";

const STATUS_NAMES: Record<string, TaskStatus> = {
  UNKNOWN: "unknown",
  CREATED: "created",
  RUNNING: "running",
  STOPPED: "stopped",
  PAUSED: "paused",
  PAUSING: "pausing",
};

/** One task's state. */
export interface TaskState {
  /** Its status. */
  status: TaskStatus;
  /** Host pid of the container's init process (0 when absent). */
  pid: number;
  /** Exit status, when stopped. */
  exitStatus: number;
}

/** A container of a pod as the CRI plugin labelled it in containerd. */
export interface PodContainer {
  /** containerd (and CRI) container id. */
  id: string;
  /** Container name in the pod (`io.kubernetes.container.name`). */
  name: string;
}

/** Options of {@linkcode connectContainerd}. */
export interface ContainerdOptions {
  /** containerd namespace (default `k8s.io`, the CRI plugin's). */
  namespace?: string;
  /** Deadline of each call (default 30 s). */
  timeoutMs?: number;
}

/** The verbs the freezer needs from containerd. */
export interface ContainerdTasks {
  /** The pod's containers that have a task (running or paused), sandbox excluded. */
  podContainers(namespace: string, pod: string): Promise<PodContainer[]>;
  /** The state of a container's task. */
  state(id: string): Promise<TaskState>;
  /** Pauses a container's task (cgroup freezer, through the shim). */
  pause(id: string): Promise<void>;
  /** Resumes a paused task. */
  resume(id: string): Promise<void>;
  /** Sends `signal` to the task's init process, or to all its processes with `all`. */
  kill(id: string, opts: { signal: number; all?: boolean }): Promise<void>;
  /** Closes the connections. */
  close(): void;
}

// deno-lint-ignore no-explicit-any
type AnyClient = grpc.Client & Record<string, any>;

let services: { tasks: grpc.ServiceClientConstructor; containers: grpc.ServiceClientConstructor };

function loadServices() {
  if (services) return services;
  const load = (path: string) =>
    grpc.loadPackageDefinition(protoLoader.loadSync(path, { defaults: true, enums: String }));
  // deno-lint-ignore no-explicit-any
  const t = load(TASKS_PROTO) as any;
  // deno-lint-ignore no-explicit-any
  const c = load(CONTAINERS_PROTO) as any;
  return services = {
    tasks: t.containerd.services.tasks.v1.Tasks,
    containers: c.containerd.services.containers.v1.Containers,
  };
}

/** Connects to the containerd listening on `socket` (a path or `unix://` URL). */
export function connectContainerd(socket: string, opts: ContainerdOptions = {}): ContainerdTasks {
  const { tasks: Tasks, containers: Containers } = loadServices();
  // grpc-js under Deno needs the `unix:/abs/path` form.
  const target = `unix:${socket.replace(/^unix:\/\//, "")}`;
  const tasks = new Tasks(target, grpc.credentials.createInsecure()) as AnyClient;
  const containers = new Containers(target, grpc.credentials.createInsecure()) as AnyClient;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const meta = new grpc.Metadata();
  meta.set("containerd-namespace", opts.namespace ?? "k8s.io");

  const call = <T>(client: AnyClient, method: string, req: unknown, what: string): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      client[method](
        req,
        meta,
        { deadline: Date.now() + timeoutMs },
        (err: grpc.ServiceError | null, res: T) => {
          if (!err) return resolve(res);
          const e = new Error(
            `Cannot ${what}: containerd at "${socket}" answered ${
              grpc.status[err.code] ?? err.code
            }: ${err.details || err.message}`,
          );
          (e as Error & { code?: number }).code = err.code;
          reject(e);
        },
      );
    });

  return {
    async podContainers(namespace, pod) {
      const filter = [
        `labels."io.kubernetes.pod.namespace"==${namespace}`,
        `labels."io.kubernetes.pod.name"==${pod}`,
        `labels."io.cri-containerd.kind"==container`,
      ].join(",");
      const res = await call<{ containers: { id: string; labels: Record<string, string> }[] }>(
        containers,
        "List",
        { filters: [filter] },
        `list the containers of pod "${namespace}/${pod}"`,
      );
      const live: PodContainer[] = [];
      for (const c of res.containers) {
        // Earlier instances of a restarted container keep their metadata but have no task.
        const s = await this.state(c.id);
        if (s.status === "running" || s.status === "paused" || s.status === "pausing") {
          live.push({ id: c.id, name: c.labels["io.kubernetes.container.name"] ?? c.id });
        }
      }
      return live.sort((a, b) => a.name.localeCompare(b.name));
    },
    async state(id) {
      try {
        const res = await call<{ process: { status: string; pid: number; exitStatus: number } }>(
          tasks,
          "Get",
          { containerId: id },
          `read the task of container "${id}"`,
        );
        return {
          status: STATUS_NAMES[res.process.status] ?? "unknown",
          pid: res.process.pid,
          exitStatus: res.process.exitStatus,
        };
      } catch (err) {
        if ((err as { code?: number }).code === grpc.status.NOT_FOUND) {
          return { status: "absent", pid: 0, exitStatus: 0 };
        }
        throw err;
      }
    },
    async pause(id) {
      await call(tasks, "Pause", { containerId: id }, `pause container "${id}"`);
    },
    async resume(id) {
      await call(tasks, "Resume", { containerId: id }, `resume container "${id}"`);
    },
    async kill(id, { signal, all = false }) {
      await call(tasks, "Kill", { containerId: id, signal, all }, `kill container "${id}"`);
    },
    close() {
      tasks.close();
      containers.close();
    },
  };
}
