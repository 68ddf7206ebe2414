/**
 * The V8 flags the controller process runs with (local environment and
 * image). V8's default young generation (semi-spaces of up to 16 MiB) and
 * its lazy heap growth let the controller's RSS climb with the rate of
 * work, not with what it holds: its live heap after a full GC stays at
 * 52-65 MiB through 200 migrations. `deno task bench controller --count 100`,
 * back to back on a quiet machine (2026-11-30): peak RSS 454 MiB with the
 * defaults, 229 MiB with these flags (0.50x), wall 30.4 s against 34.5 s.
 *
 * Not the agent's: tried on 2026-11-30, its peak RSS migrating 1 GiB fell
 * from 272 to 215 MiB, but its streaming slowed (an encrypted migration of
 * 256 MiB: +30 % downtime over plain with them, +13.7 % without). Tried
 * again with OpenSSL's AES-GCM (storage/aes_gcm.ts), 2 rounds of 256 MiB and
 * 1 GiB each: peak 310 -> 262 MiB, but plain downtime at 256 MiB 6.2-6.4 ->
 * 6.7-6.9 s and the encrypted overhead +1.1 % -> +22.2 %. Smaller stream
 * buffers did better: 2 MiB reads and 8 MiB MinIO parts (storage/_fs_io.ts)
 * bring the agent to 219-222 MiB at the same speed.
 * @module
 */

/** For `deno run --v8-flags=...`. */
export const CONTROLLER_V8_FLAGS = "--max-semi-space-size=1,--optimize-for-size";
