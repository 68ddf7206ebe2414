/**
 * Files in and out of any store: the provider's fast path when it has one
 * (`putFile`, `getToFile`), else the streaming `put`/`get`, with the same
 * outcome: a verified object, or a verified file that appears only complete.
 * @module
 */
import type { CheckpointStore, GetOptions, ObjectInfo, PutOptions } from "./backend.ts";

/** Stores the file at `path` as `key` (see {@linkcode CheckpointStore.putFile}). */
export async function storeFile(
  store: CheckpointStore,
  key: string,
  path: string,
  opts: PutOptions = {},
): Promise<ObjectInfo> {
  if (store.putFile) return await store.putFile(key, path, opts);
  const file = await Deno.open(path, { read: true });
  return await store.put(key, file.readable, opts);
}

/**
 * Copies object `key` into the file `path` (replaced), verified; on any
 * failure nothing is left at `path` (see {@linkcode CheckpointStore.getToFile}).
 */
export async function fetchToFile(
  store: CheckpointStore,
  key: string,
  path: string,
  opts: GetOptions = {},
): Promise<ObjectInfo> {
  if (store.getToFile) return await store.getToFile(key, path, opts);
  const tmp = `${path}.lpm-tmp-${crypto.randomUUID()}`;
  try {
    const stream = await store.get(key, opts); // rejects with NotFound for a missing key
    const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
    await stream.pipeTo(file.writable);
    const info = await store.stat(key);
    await Deno.rename(tmp, path);
    return info!;
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
}
