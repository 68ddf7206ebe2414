/**
 * The C allocator settings lpm's long-running processes (controller, agent)
 * run with, in the local environment and in their images. glibc's malloc
 * raises its mmap threshold after every large free (up to 32 MiB), so the
 * 1 MiB buffers an agent streams a checkpoint through end up in heap arenas
 * it never gives back, and the process's RSS climbs in a sawtooth. A fixed
 * threshold (glibc's own default, 128 KiB, which also fixes the trim
 * threshold) returns large buffers to the system when they are freed; two
 * arenas instead of eight per core keep a process's threads from each
 * holding their own.
 *
 * Measured on the real local nodes (`deno task bench controller --soak 50`,
 * 2026-11-30, a fresh environment each run): agents' RSS over 50 hops
 * 151-187 MiB and rising without, 105-114 MiB and flat with (high-water of
 * the last 10 hops against the first 10: -13 %); the controller's RSS grew
 * +30 MiB over the 50 hops without, +14 MiB with from a cold start (of
 * which its V8 heap: +4 MiB), +8 MiB (+7.7 %) when the soak follows the
 * bench's 20 real migrations.
 * @module
 */

/** Environment variables for `deno run` of the controller and the agent. */
export const ALLOCATOR_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: "131072",
  MALLOC_ARENA_MAX: "2",
};
