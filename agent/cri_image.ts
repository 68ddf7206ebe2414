/**
 * Pulls an image through the node runtime's CRI image service (containerd or
 * CRI-O, over its unix socket), the way the kubelet pulls: the image lands in
 * the store the kubelet uses, so a pod created afterwards starts without a
 * pull. Uses a minimal copy of the CRI messages (`cri_image.proto`).
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const PROTO_PATH = new URL("./cri_image.proto", import.meta.url).pathname;

let service: grpc.ServiceClientConstructor | undefined;

function imageService(): grpc.ServiceClientConstructor {
  if (service) return service;
  const def = protoLoader.loadSync(PROTO_PATH, { defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    runtime: { v1: { ImageService: grpc.ServiceClientConstructor } };
  };
  return service = pkg.runtime.v1.ImageService;
}

/** Options of {@linkcode criPullImage}. */
export interface CriPullOptions {
  /** Registry credentials. */
  auth?: { username: string; password: string };
  /** Cancels the pull. */
  signal?: AbortSignal;
  /** Gives up after this long (default 10 min). */
  timeoutMs?: number;
}

/**
 * Pulls `image` through the CRI at `endpoint` (`unix:///run/containerd/containerd.sock`)
 * and resolves with the runtime's image reference (its image id).
 */
export function criPullImage(
  endpoint: string,
  image: string,
  opts: CriPullOptions = {},
): Promise<string> {
  const Service = imageService();
  // Deno's grpc-js needs the unix: form with an absolute path.
  const target = endpoint.replace(/^unix:\/\/(?=\/)/, "unix:");
  const client = new Service(target, grpc.credentials.createInsecure());
  return new Promise<string>((resolve, reject) => {
    const req = {
      image: { image },
      ...(opts.auth
        ? { auth: { username: opts.auth.username, password: opts.auth.password } }
        : {}),
    };
    const deadline = Date.now() + (opts.timeoutMs ?? 600_000);
    // deno-lint-ignore no-explicit-any
    const call = (client as any).PullImage(
      req,
      { deadline },
      (err: grpc.ServiceError | null, res: { imageRef: string }) => {
        opts.signal?.removeEventListener("abort", onAbort);
        client.close();
        if (err) {
          reject(
            new Error(
              `The runtime at "${endpoint}" could not pull "${image}": ${
                err.details || err.message
              }`,
            ),
          );
        } else resolve(res.imageRef);
      },
    );
    const onAbort = () => call.cancel();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
  });
}
