/**
 * Names an image in the node's containerd, in the Kubernetes namespace
 * (`k8s.io`) where the CRI plugin sees it, with containerd's own `ctr`
 * (shipped with every containerd release, matching its API). A deviation
 * from the agent's gRPC-only habits, kept small: a decrypted checkpoint
 * image is pulled by the CRI under a loopback name (`image_loopback.ts`) and
 * must then carry the name the restored pod uses; the CRI has no call for
 * that, and containerd's images service is one more protocol for one record.
 * @module
 */

/** Options of {@linkcode nameImage}. */
export interface CtrOptions {
  /** containerd's socket: `unix:///run/containerd/containerd.sock` or a path. */
  address: string;
  /** containerd namespace (default `k8s.io`, the CRI's). */
  namespace?: string;
  /** The `ctr` binary (default: `LPM_CTR` or `ctr` on PATH). */
  ctr?: string;
  /** Kills `ctr`. */
  signal?: AbortSignal;
}

async function ctr(args: string[], opts: CtrOptions, what: string): Promise<void> {
  const bin = opts.ctr ?? Deno.env.get("LPM_CTR") ?? "ctr";
  const address = opts.address.replace(/^unix:\/\//, "");
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(bin, {
      args: ["--address", address, "--namespace", opts.namespace ?? "k8s.io", ...args],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
      signal: opts.signal,
    }).output();
  } catch (err) {
    throw new Error(`Cannot run "${bin}" to ${what}: ${(err as Error).message}`);
  }
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).split("\n")
      .filter((l) => l && !l.includes("DEPRECATION")).join("; ").slice(0, 2000);
    throw new Error(`containerd did not ${what}: ${err}`);
  }
}

/**
 * Gives image `from` (in containerd) the name `to` (replacing an image of
 * that name), then drops the name `from`; the content stays, now under `to`.
 */
export async function nameImage(from: string, to: string, opts: CtrOptions): Promise<void> {
  await ctr(["images", "tag", "--local", "--force", from, to], opts, `name the image "${to}"`);
  await ctr(["images", "rm", from], opts, `drop the temporary name "${from}"`);
}
