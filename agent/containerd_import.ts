/**
 * Imports an OCI layout tarball (a stream) into the node's containerd, in the
 * Kubernetes namespace (`k8s.io`) where the CRI plugin sees it, unpacked
 * into the default snapshotter, with containerd's own `ctr` (shipped with
 * every containerd release, matching its API). A deviation from the agent's
 * gRPC-only habits: containerd's import (content ingest with GC labels,
 * image record, unpack) is several services' worth of protocol, and `ctr`
 * does exactly what `ctr images import` on the node would.
 * @module
 */

/** Options of {@linkcode importImage}. */
export interface ImportOptions {
  /** containerd's socket: `unix:///run/containerd/containerd.sock` or a path. */
  address: string;
  /** containerd namespace (default `k8s.io`, the CRI's). */
  namespace?: string;
  /** The `ctr` binary (default: `LPM_CTR` or `ctr` on PATH). */
  ctr?: string;
  /** Kills the import. */
  signal?: AbortSignal;
}

/** Imports an OCI layout tarball given as a stream (piped to `ctr images import -`). */
export async function importImageStream(
  tar: ReadableStream<Uint8Array>,
  opts: ImportOptions,
): Promise<void> {
  const ctr = opts.ctr ?? Deno.env.get("LPM_CTR") ?? "ctr";
  const address = opts.address.replace(/^unix:\/\//, "");
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(ctr, {
      args: ["--address", address, "--namespace", opts.namespace ?? "k8s.io", "images", "import"]
        .concat(["-"]),
      stdin: "piped",
      stdout: "null",
      stderr: "piped",
      signal: opts.signal,
    }).spawn();
  } catch (err) {
    throw new Error(`Cannot run "${ctr}" to import the decrypted image: ${(err as Error).message}`);
  }
  const stderr = new Response(child.stderr).text();
  let feedError: unknown;
  await tar.pipeTo(child.stdin).catch((err) => {
    feedError = err;
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  });
  const status = await child.status;
  const text = await stderr;
  if (feedError) throw feedError; // the decryption's error, not ctr's reaction to it
  if (!status.success) {
    const err = text.split("\n").filter((l) => l && !l.includes("DEPRECATION")).join("; ")
      .slice(0, 2000);
    throw new Error(`containerd did not import the decrypted image: ${err}`);
  }
}
