/**
 * Live progress for long commands: on a terminal one line redrawn in place
 * (spinner, phase, bar, bytes, elapsed); elsewhere plain lines, printed when
 * something changes and at most every few seconds otherwise.
 * @module
 */

/** What one progress update shows. */
export interface ProgressState {
  /** Phase or step name. */
  phase: string;
  /** Bytes done (0 when unknown). */
  bytesDone?: number;
  /** Bytes expected (0 when unknown). */
  bytesTotal?: number;
  /** Extra text. */
  detail?: string;
}

const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/** Formats a byte count for people: 1.5 MiB. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** Renders one progress line (no colors, no control characters). */
export function renderLine(s: ProgressState, elapsedMs: number, frame = 0, width = 24): string {
  const parts = [`${SPINNER[frame % SPINNER.length]} ${s.phase.padEnd(13)}`];
  if (s.bytesTotal && s.bytesTotal > 0) {
    const f = Math.min(1, (s.bytesDone ?? 0) / s.bytesTotal);
    const full = Math.round(f * width);
    parts.push(
      `[${"#".repeat(full)}${".".repeat(width - full)}] ${(f * 100).toFixed(0).padStart(3)}%`,
    );
    parts.push(`${formatBytes(s.bytesDone ?? 0)}/${formatBytes(s.bytesTotal)}`);
  } else if (s.bytesDone) {
    parts.push(formatBytes(s.bytesDone));
  }
  parts.push(`${(elapsedMs / 1000).toFixed(1)}s`);
  if (s.detail) parts.push(s.detail);
  return parts.join("  ");
}

/** A progress display on stderr. */
export class Progress {
  readonly #tty: boolean;
  readonly #t0 = Date.now();
  #frame = 0;
  #last = "";
  #lastPrint = 0;
  readonly #enc = new TextEncoder();

  /** Creates a display; `tty` defaults to whether stderr is a terminal. */
  constructor(
    tty = Deno.stderr.isTerminal(),
    readonly write = (s: string) => Deno.stderr.writeSync(this.#enc.encode(s)),
  ) {
    this.#tty = tty;
  }

  /** Shows `s`. */
  update(s: ProgressState): void {
    const elapsed = Date.now() - this.#t0;
    if (this.#tty) {
      this.write(`\r\x1b[2K${renderLine(s, elapsed, this.#frame++)}`);
      return;
    }
    const key = `${s.phase}|${s.detail ?? ""}`;
    if (key !== this.#last || Date.now() - this.#lastPrint > 5000) {
      this.write(renderLine(s, elapsed, 0).replace(/^\S+ /, "") + "\n");
      this.#last = key;
      this.#lastPrint = Date.now();
    }
  }

  /** Ends the display with a final line. */
  done(line: string): void {
    this.write(this.#tty ? `\r\x1b[2K${line}\n` : `${line}\n`);
  }
}
