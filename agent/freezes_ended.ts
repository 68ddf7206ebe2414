/**
 * How the agent's freezes ended (confirmed, killed, thawed), kept on disk so
 * that an agent restart does not forget them. Without it, a restart between
 * a hand-over's CONFIRM and its KILL made the controller's retried CONFIRM
 * answer "unknown" (the deadline record goes at CONFIRM, the "confirmed"
 * state lived in memory only): the controller failed the migration and
 * removed the restored pod while the source was already deleted, leaving no
 * copy at all. One small JSON file per key in `<state-dir>/freezes-ended`,
 * written atomically before the answer; files older than {@linkcode ENDED_KEEP_MS} are dropped
 * when the agent starts.
 * @module
 */

/** How long an ended freeze is remembered: far beyond any migration's retries. */
export const ENDED_KEEP_MS = 24 * 3600_000;

/** A map of key to ended state that writes every `set` to `dir` (an error goes to `onError`). */
export class EndedFreezes<S extends { key: string }> extends Map<string, S> {
  private constructor(readonly dir: string, private readonly onError: (err: Error) => void) {
    super();
  }

  /** Opens `dir` (creating it), loads what it remembers, drops entries older than `keepMs`. */
  static async open<S extends { key: string }>(
    dir: string,
    opts: { now?: () => number; keepMs?: number; onError?: (err: Error) => void } = {},
  ): Promise<EndedFreezes<S>> {
    const now = opts.now ?? Date.now;
    const keep = opts.keepMs ?? ENDED_KEEP_MS;
    const m = new EndedFreezes<S>(dir, opts.onError ?? (() => {}));
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    for await (const e of Deno.readDir(dir)) {
      const path = `${dir}/${e.name}`;
      if (!e.isFile || !e.name.endsWith(".json")) {
        if (e.name.endsWith(".tmp")) await Deno.remove(path).catch(() => {});
        continue;
      }
      const stat = await Deno.stat(path).catch(() => undefined);
      if (!stat?.mtime || now() - stat.mtime.getTime() > keep) {
        await Deno.remove(path).catch(() => {});
        continue;
      }
      try {
        const s = JSON.parse(await Deno.readTextFile(path)) as S;
        if (`${s.key}.json` === e.name) Map.prototype.set.call(m, s.key, s);
      } catch {
        // not ours, or unreadable: ignored
      }
    }
    return m;
  }

  /**
   * Remembers `state` under `key`, on disk before it returns: the agent
   * answers a CONFIRM only once a restart cannot forget it. Synchronous on
   * purpose (a few hundred bytes, once per freeze's end).
   */
  override set(key: string, state: S): this {
    super.set(key, state);
    // Keys are checked file-safe ([A-Za-z0-9._-]) before any freeze is held.
    if (this.dir && /^[A-Za-z0-9._-]{1,200}$/.test(key)) {
      const path = `${this.dir}/${key}.json`;
      try {
        Deno.writeTextFileSync(`${path}.tmp`, JSON.stringify(state) + "\n", { mode: 0o600 });
        Deno.renameSync(`${path}.tmp`, path);
      } catch (err) {
        this.onError(err as Error);
      }
    }
    return this;
  }
}
