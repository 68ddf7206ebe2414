/** Structured logs: one JSON object per line on stderr. @module */

/** Log severities. */
export type Level = "debug" | "info" | "warn" | "error";

const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** A logger carrying fixed fields (component, object key, phase...). */
export class Logger {
  /** Creates a logger with fixed `fields`, writing lines through `sink`. */
  constructor(
    readonly fields: Record<string, unknown> = {},
    readonly level: Level = (Deno.env.get("LPM_LOG_LEVEL") as Level) ?? "info",
    readonly sink: (line: string) => void = (l) => console.error(l),
  ) {}

  /** A child logger with more fixed fields. */
  with(fields: Record<string, unknown>): Logger {
    return new Logger({ ...this.fields, ...fields }, this.level, this.sink);
  }

  /** Logs at debug level. */
  debug(msg: string, fields?: Record<string, unknown>): void {
    this.#log("debug", msg, fields);
  }

  /** Logs at info level. */
  info(msg: string, fields?: Record<string, unknown>): void {
    this.#log("info", msg, fields);
  }

  /** Logs at warn level. */
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.#log("warn", msg, fields);
  }

  /** Logs at error level; an `err` field that is an Error is flattened to its message. */
  error(msg: string, fields?: Record<string, unknown>): void {
    this.#log("error", msg, fields);
  }

  #log(level: Level, msg: string, fields?: Record<string, unknown>): void {
    if (ORDER[level] < ORDER[this.level]) return;
    const rec: Record<string, unknown> = {
      ts: new Date().toISOString(),
      level,
      msg,
      ...this.fields,
    };
    for (const [k, v] of Object.entries(fields ?? {})) {
      rec[k] = v instanceof Error ? v.message : v;
    }
    this.sink(JSON.stringify(rec));
  }
}

/** A logger that drops everything (tests). */
export const silentLogger: Logger = new Logger({}, "error", () => {});
