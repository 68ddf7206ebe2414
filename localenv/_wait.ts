/** Polling helpers for readiness checks. @module */

/** Options for {@linkcode waitFor}. */
export interface WaitOptions {
  /** What is awaited, for the timeout message. */
  what: string;
  /** Give up after this long. */
  timeoutMs?: number;
  /** Time between tries. */
  intervalMs?: number;
  /** A process whose exit means waiting is pointless. */
  exited?: Promise<number>;
}

/**
 * Calls `probe` until it returns a value other than undefined/false, and
 * returns that value. Throws on timeout, or as soon as `exited` settles.
 */
export async function waitFor<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  opts: WaitOptions,
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let exitCode: number | undefined;
  opts.exited?.then((c) => exitCode = c);
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (exitCode !== undefined) {
      throw new Error(`Gave up waiting for ${opts.what}: the process exited with code ${exitCode}`);
    }
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 200));
  }
  const cause = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
  throw new Error(
    `Timed out after ${opts.timeoutMs ?? 60_000} ms waiting for ${opts.what}${cause}`,
  );
}

/** A free TCP port on 127.0.0.1 (the kernel picks it). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** True when something accepts TCP connections on 127.0.0.1:`port`. */
export async function tcpOpen(port: number): Promise<boolean> {
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    c.close();
    return true;
  } catch {
    return false;
  }
}
