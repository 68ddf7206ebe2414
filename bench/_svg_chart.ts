/**
 * A hand-written SVG line chart (no dependency): linear axes from 0 with
 * round tick steps, one polyline with dots per series, a legend. Enough for
 * the migration benchmark's "seconds against memory size".
 * @module
 */

/** One line of the chart. */
export interface Series {
  /** Legend text. */
  name: string;
  /** [x, y] points; drawn sorted by x. */
  points: [number, number][];
  /** Stroke colour (CSS). */
  color: string;
  /** Dashed line. */
  dashed?: boolean;
}

/** What {@linkcode lineChart} draws. */
export interface ChartOptions {
  /** Title above the plot. */
  title: string;
  /** X axis label. */
  xLabel: string;
  /** Y axis label. */
  yLabel: string;
  /** The lines. */
  series: Series[];
  /** A line of small print under the plot (which run, which commit). */
  note?: string;
  /** Pixels, default 720 x 420. */
  width?: number;
  /** Pixels. */
  height?: number;
}

/** Text safe inside SVG markup. */
export function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

/** A round tick step (1, 2 or 5 times a power of ten) giving about `count` ticks up to `max`. */
export function tickStep(max: number, count = 5): number {
  if (!(max > 0)) return 1;
  const raw = max / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const m = raw / pow;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * pow;
}

function fmt(n: number): string {
  return Number(n.toFixed(6)).toString();
}

/** The chart as a standalone SVG document. */
export function lineChart(o: ChartOptions): string {
  const W = o.width ?? 720;
  const H = o.height ?? 420;
  const m = { left: 64, right: 210, top: 40, bottom: o.note ? 72 : 56 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const all = o.series.flatMap((s) => s.points).filter(([x, y]) => isFinite(x) && isFinite(y));
  const xStep = tickStep(Math.max(1, ...all.map(([x]) => x)));
  const yStep = tickStep(Math.max(1e-9, ...all.map(([, y]) => y)));
  const xMax = Math.max(xStep, Math.ceil(Math.max(0, ...all.map(([x]) => x)) / xStep) * xStep);
  const yMax = Math.max(yStep, Math.ceil(Math.max(0, ...all.map(([, y]) => y)) / yStep) * yStep);
  const px = (x: number) => m.left + (x / xMax) * pw;
  const py = (y: number) => m.top + ph - (y / yMax) * ph;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${m.left}" y="22" font-size="15" font-weight="bold">${escapeXml(o.title)}</text>`,
  ];
  for (let x = 0; x <= xMax + 1e-9; x += xStep) {
    out.push(
      `<line x1="${fmt(px(x))}" y1="${m.top}" x2="${fmt(px(x))}" y2="${
        m.top + ph
      }" stroke="#eee"/>`,
      `<text x="${fmt(px(x))}" y="${m.top + ph + 16}" text-anchor="middle">${fmt(x)}</text>`,
    );
  }
  for (let y = 0; y <= yMax + 1e-9; y += yStep) {
    out.push(
      `<line x1="${m.left}" y1="${fmt(py(y))}" x2="${m.left + pw}" y2="${
        fmt(py(y))
      }" stroke="#eee"/>`,
      `<text x="${m.left - 6}" y="${fmt(py(y) + 4)}" text-anchor="end">${fmt(y)}</text>`,
    );
  }
  out.push(
    `<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`,
    `<text x="${m.left + pw / 2}" y="${m.top + ph + 36}" text-anchor="middle">${
      escapeXml(o.xLabel)
    }</text>`,
    `<text transform="translate(18 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">${
      escapeXml(o.yLabel)
    }</text>`,
  );
  o.series.forEach((s, i) => {
    const pts = s.points.filter(([x, y]) => isFinite(x) && isFinite(y)).sort((a, b) => a[0] - b[0]);
    const dash = s.dashed ? ` stroke-dasharray="6 4"` : "";
    if (pts.length > 1) {
      out.push(
        `<polyline fill="none" stroke="${escapeXml(s.color)}" stroke-width="2"${dash} points="${
          pts.map(([x, y]) => `${fmt(px(x))},${fmt(py(y))}`).join(" ")
        }"/>`,
      );
    }
    for (const [x, y] of pts) {
      out.push(
        `<circle cx="${fmt(px(x))}" cy="${fmt(py(y))}" r="3" fill="${escapeXml(s.color)}"/>`,
      );
    }
    const ly = m.top + 10 + i * 20;
    out.push(
      `<line x1="${W - m.right + 12}" y1="${ly}" x2="${W - m.right + 36}" y2="${ly}" stroke="${
        escapeXml(s.color)
      }" stroke-width="2"${dash}/>`,
      `<text x="${W - m.right + 42}" y="${ly + 4}">${escapeXml(s.name)}</text>`,
    );
  });
  if (o.note) {
    out.push(
      `<text x="${m.left}" y="${H - 10}" font-size="10" fill="#555">${escapeXml(o.note)}</text>`,
    );
  }
  out.push("</svg>");
  return out.join("\n") + "\n";
}
