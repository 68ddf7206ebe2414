/**
 * The kubelet driver: checkpoints a container with the kubelet checkpoint API
 * (`POST /checkpoint/{namespace}/{pod}/{container}?timeout=<s>`), either
 * directly on the node's kubelet with the agent's own client certificate
 * (verifying the kubelet's serving certificate against a configured CA), or
 * through the API server's node proxy with the agent's kubeconfig. The kubelet
 * writes the archive under its root dir, which the agent reads (and removes:
 * the kubelet never does). Works for CRI-O and containerd 2.x nodes.
 * @module
 */
import type { KubeHttp } from "../../kube/config.ts";
import type { CheckpointOptions, CheckpointResult, ContainerRef, RuntimeDriver } from "./driver.ts";
import { criuVersion } from "./criu_version.ts";
import {
  CriuFailureError,
  DEFAULT_CRIU_LOG_DIRS,
  describeCriuFailure,
  readCriuLog,
} from "./criu_log.ts";

/** How the driver reaches the kubelet. */
export type KubeletAccess =
  | {
    /** Direct HTTPS to the kubelet. */
    mode: "direct";
    /** e.g. `https://10.0.0.5:10250`. */
    url: string;
    /** PEM CA that signed the kubelet's serving certificate. */
    caCert: string;
    /** PEM client certificate of the agent (a user with `nodes/checkpoint`). */
    clientCert?: string;
    /** PEM client key. */
    clientKey?: string;
    /**
     * Or a bearer token file (a service account's projected token, which the
     * kubelet checks with a TokenReview): re-read on every call, as it rotates.
     */
    tokenFile?: string;
  }
  | {
    /** Through `/api/v1/nodes/{node}/proxy/...`. */
    mode: "proxy";
    /** API server client (the agent's kubeconfig or service account). */
    kube: KubeHttp;
  };

/** Options for {@linkcode createKubeletDriver}. */
export interface KubeletDriverOptions {
  /** Node this agent runs on. */
  nodeName: string;
  /** How to reach the kubelet. */
  access: KubeletAccess;
  /** The kubelet's `--root-dir` as the kubelet sees it (default `/var/lib/kubelet`). */
  kubeletRootDir?: string;
  /** Where that directory is mounted in the agent (default: the same path). */
  kubeletRootMount?: string;
  /** Runtime name and version from the node (`containerd://2.2.9`). */
  runtimeVersion?: string;
  /** Default checkpoint timeout in seconds (default 300). */
  timeoutSeconds?: number;
  /**
   * Directories the runtime keeps CRIU logs in (default
   * {@linkcode DEFAULT_CRIU_LOG_DIRS}): a log named in a runtime error is read
   * only inside them.
   */
  criuLogDirs?: readonly string[];
}

/** A runtime driver backed by the kubelet checkpoint API. */
export interface KubeletDriver extends RuntimeDriver {
  /** "kubelet". */
  readonly name: string;
  /** Checkpoints one container of a pod; returns the archive path as seen by the agent. */
  checkpoint(ref: ContainerRef, opts: CheckpointOptions): Promise<CheckpointResult>;
  /**
   * Removes archives in the kubelet's checkpoint dir older than `olderThanMs`
   * that are not in `keep` (the kubelet never removes them; an agent killed
   * mid-checkpoint leaves the one the kubelet finished after it died).
   * Returns the removed paths.
   */
  sweepArchives(opts: { olderThanMs: number; keep?: Set<string> }): Promise<string[]>;
  /** Releases the HTTP client. */
  close(): void;
}

/** Why a kubelet status failed, as a hint for people (`body` tells a missing pod from a missing route). */
export function kubeletHint(status: number, body = ""): string {
  if (status === 404) {
    if (/does not exist|not found:/i.test(body) && !/404 page not found/.test(body)) {
      return "the pod or container does not exist on this node";
    }
    return "feature gate ContainerCheckpoint off or runtime without checkpoint support?";
  }
  if (status === 401 || status === 403) {
    return 'the agent lacks RBAC: it needs "create" and "get" on "nodes/checkpoint" (direct) ' +
      'or "nodes/proxy" (through the API server)';
  }
  if (status >= 500) return "the container runtime failed the checkpoint";
  return "unexpected answer";
}

/** What the driver's steps share: the options and what was derived from them once. */
interface KubeletContext {
  opts: KubeletDriverOptions;
  access: KubeletAccess;
  client: Deno.HttpClient | undefined;
  rootDir: string;
  mount: string;
  runtimeName: string;
  runtimeVersion: string | undefined;
  criu?: Promise<string | undefined>;
}

/** Creates the kubelet driver. */
export function createKubeletDriver(opts: KubeletDriverOptions): KubeletDriver {
  const access = opts.access;
  if (access.mode === "direct" && !access.tokenFile && !(access.clientCert && access.clientKey)) {
    throw new Error("Direct kubelet access needs a client certificate and key, or a token file");
  }
  const client = access.mode === "direct"
    ? Deno.createHttpClient({
      caCerts: [access.caCert],
      ...(access.clientCert && access.clientKey
        ? { cert: access.clientCert, key: access.clientKey }
        : {}),
    })
    : undefined;
  const rootDir = (opts.kubeletRootDir ?? "/var/lib/kubelet").replace(/\/$/, "");
  const mount = (opts.kubeletRootMount ?? rootDir).replace(/\/$/, "");
  const [runtimeName, runtimeVersion] = (opts.runtimeVersion ?? "").split("://");
  const ctx: KubeletContext = { opts, access, client, rootDir, mount, runtimeName, runtimeVersion };
  return {
    name: "kubelet",
    checkpoint: (ref, copts) => checkpointContainer(ctx, ref, copts),
    sweepArchives: (sopts) => sweepArchives(ctx, sopts),
    close() {
      client?.close();
    },
  };
}

async function post(ctx: KubeletContext, path: string, signal?: AbortSignal): Promise<Response> {
  const access = ctx.access;
  if (access.mode === "direct") {
    const headers = new Headers();
    if (access.tokenFile) {
      const token = (await Deno.readTextFile(access.tokenFile)).trim();
      headers.set("authorization", `Bearer ${token}`);
    }
    return fetch(`${access.url.replace(/\/$/, "")}${path}`, {
      method: "POST",
      client: ctx.client,
      signal,
      headers,
    });
  }
  return access.kube.request(
    `/api/v1/nodes/${encodeURIComponent(ctx.opts.nodeName)}/proxy${path}`,
    { method: "POST", signal },
  );
}

async function checkpointContainer(
  ctx: KubeletContext,
  ref: ContainerRef,
  copts: CheckpointOptions,
): Promise<CheckpointResult> {
  const what = `container "${ref.container}" of pod "${ref.namespace}/${ref.pod}"`;
  if (!ref.namespace || !ref.pod) {
    throw new Error(
      `Cannot checkpoint ${what}: the kubelet API needs the pod's namespace and name`,
    );
  }
  const timeout = copts.timeoutSeconds || ctx.opts.timeoutSeconds || 300;
  const path = `/checkpoint/${encodeURIComponent(ref.namespace)}/${encodeURIComponent(ref.pod)}/${
    encodeURIComponent(ref.container)
  }?timeout=${timeout}`;
  const via = ctx.access.mode === "direct"
    ? `kubelet ${ctx.access.url}`
    : `the API server's proxy to node "${ctx.opts.nodeName}"`;
  let res: Response;
  try {
    res = await post(ctx, path, copts.signal);
  } catch (err) {
    throw new Error(
      `Cannot checkpoint ${what}: ${via} is unreachable: ${(err as Error).message}`,
    );
  }
  const body = await res.text();
  await throwOnFailure(ctx, res, body, what, via);
  const reported = reportedArchive(body, what, via);
  const archivePath = reported.startsWith(`${ctx.rootDir}/`)
    ? `${ctx.mount}${reported.slice(ctx.rootDir.length)}`
    : reported;
  try {
    await Deno.stat(archivePath);
  } catch {
    throw new Error(
      `Checkpoint of ${what} was written to "${reported}" but the agent cannot read ` +
        `"${archivePath}": is the kubelet root dir "${ctx.rootDir}" mounted at "${ctx.mount}"?`,
    );
  }
  return {
    archivePath,
    // The runtime calls the node's CRIU (the agent shares the host's PATH view).
    runtime: {
      name: ctx.runtimeName || "kubelet",
      version: ctx.runtimeVersion,
      criuVersion: await (ctx.criu ??= criuVersion()),
    },
    ownsArchive: true,
  };
}

/** Throws the error a failed kubelet answer means (with CRIU's own words when it left a log). */
async function throwOnFailure(
  ctx: KubeletContext,
  res: Response,
  body: string,
  what: string,
  via: string,
): Promise<void> {
  if (res.status >= 500) {
    // The runtime names CRIU's log on the node; its Error lines say why.
    const log = await readCriuLog(body, { dirs: ctx.opts.criuLogDirs ?? DEFAULT_CRIU_LOG_DIRS });
    if (log) {
      throw new CriuFailureError(
        `Cannot checkpoint ${what}: ${describeCriuFailure(log, { node: ctx.opts.nodeName })}; ` +
          `${via} returned ${res.status}: ${body.trim().slice(0, 300)}`,
        log,
      );
    }
  }
  if (!res.ok) {
    throw new Error(
      `Cannot checkpoint ${what}: ${via} returned ${res.status} (${
        kubeletHint(res.status, body)
      }): ${body.trim().slice(0, 500)}`,
    );
  }
}

/** The archive path in the kubelet's answer `{"items":[path]}`, as the kubelet sees it. */
function reportedArchive(body: string, what: string, via: string): string {
  let items: unknown;
  try {
    items = (JSON.parse(body) as { items?: unknown }).items;
  } catch {
    items = undefined;
  }
  if (!Array.isArray(items) || typeof items[0] !== "string") {
    throw new Error(
      `Cannot checkpoint ${what}: ${via} answered without an archive path: ${body.slice(0, 300)}`,
    );
  }
  return items[0] as string;
}

async function sweepArchives(
  ctx: KubeletContext,
  { olderThanMs, keep = new Set() }: { olderThanMs: number; keep?: Set<string> },
): Promise<string[]> {
  const dir = `${ctx.mount}/checkpoints`;
  const removed: string[] = [];
  const cutoff = Date.now() - olderThanMs;
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return removed;
  }
  for (const e of entries) {
    if (!e.isFile || !/^checkpoint-.*\.tar$/.test(e.name)) continue;
    const path = `${dir}/${e.name}`;
    if (keep.has(path)) continue;
    const st = await Deno.stat(path).catch(() => undefined);
    if (!st?.mtime || st.mtime.getTime() > cutoff) continue;
    await Deno.remove(path).then(() => removed.push(path), () => {});
  }
  return removed;
}
