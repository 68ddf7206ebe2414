/**
 * A tee whose two branches move in step: the source is read only when both
 * branches asked for more, so the faster reader waits for the slower one and
 * memory stays at a chunk or two per branch whatever the stream's length
 * (the standard `ReadableStream.tee()` buffers without bound for the slower
 * branch). Both branches get the same chunk objects: neither may modify them.
 * Cancelling one branch (its reader failed) cancels the source and errors
 * the other branch with the same reason.
 * @module
 */

/** Splits `src` into two branches that read it in step. */
export function teeInStep<T>(src: ReadableStream<T>): [ReadableStream<T>, ReadableStream<T>] {
  const reader = src.getReader();
  const ctl: ReadableStreamDefaultController<T>[] = [];
  let wants: (PromiseWithResolvers<void> | undefined)[] = [undefined, undefined];
  let ended = false;
  const each = (f: (c: ReadableStreamDefaultController<T>) => void) => {
    for (const c of ctl) {
      try {
        f(c);
      } catch { /* that branch is already closed or errored */ }
    }
  };
  const step = async () => {
    const waiting = wants;
    wants = [undefined, undefined];
    try {
      const r = await reader.read();
      if (r.done) {
        ended = true;
        each((c) => c.close());
      } else each((c) => c.enqueue(r.value));
    } catch (err) {
      ended = true;
      each((c) => c.error(err));
    }
    for (const w of waiting) w?.resolve();
  };
  const branch = (i: number) =>
    new ReadableStream<T>({
      start(c) {
        ctl[i] = c;
      },
      pull() {
        if (ended) return;
        const w = Promise.withResolvers<void>();
        wants[i] = w;
        if (wants[0] && wants[1]) void step();
        return w.promise;
      },
      async cancel(reason) {
        ended = true;
        each((c) => c.error(reason));
        for (const w of wants) w?.resolve();
        await reader.cancel(reason).catch(() => {});
      },
    });
  return [branch(0), branch(1)];
}
