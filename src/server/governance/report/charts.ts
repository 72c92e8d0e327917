/**
 * The report's charts as geometry: horizontal bar charts whose rectangles, labels and gridlines
 * are computed here and drawn as inline SVG by the report's template (report/templates.ts), so
 * the HTML report needs no script, no font and nothing from the network, and every label is
 * escaped by the template engine like any other text. Colours come from CSS classes.
 */

export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
  cls: string;
  /** The exact figure, shown as a tooltip (`<title>`). */
  title: string;
}

export interface Label {
  x: number;
  y: number;
  text: string;
  anchor: 'start' | 'middle' | 'end';
  cls: string;
}

export interface Line {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

export interface Chart {
  id: string;
  title: string;
  /** What the chart shows, for screen readers (`aria-label`). */
  summary: string;
  width: number;
  height: number;
  rects: Rect[];
  labels: Label[];
  grid: Line[];
  legend: { cls: string; text: string }[];
}

export interface Series {
  key: string;
  label: string;
  cls: string;
}

export interface Row {
  label: string;
  /** One value per series. */
  values: number[];
}

const WIDTH = 680;
const LABEL_W = 170;
const RIGHT_PAD = 70;
const ROW_H = 24;
const TOP = 8;
const AXIS_H = 22;
const LABEL_MAX = 26;

const cut = (s: string) => (s.length > LABEL_MAX ? `${s.slice(0, LABEL_MAX - 1)}…` : s);

/** A round number at or above `max` for the axis: 1, 2, 5 × 10^k. */
export function niceMax(max: number): number {
  if (max <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

const M = 60_000;
/** Durations whose half is round too, for time axes (0, 30m, 1h rather than 0, 41m40s, 1h23m). */
const TIME_STEPS = [
  1, 2, 4, 10, 20, 30, 60, 120, 240, 480, 720, 1440, 2880, 5760, 11520, 20160, 43200, 86400,
].map((m) => m * M);

/** A round duration at or above `max` (ms), for the axis of a time chart. */
export function niceDuration(max: number): number {
  return TIME_STEPS.find((t) => t >= max) ?? niceMax(max);
}

/**
 * Stacked (`stacked: true`: the series of a row side by side along one bar) or grouped (one thin
 * bar per series) horizontal bars; `format` writes a value for the axis and the tooltips.
 */
export function barChart(opts: {
  id: string;
  title: string;
  summary: string;
  rows: Row[];
  series: Series[];
  stacked: boolean;
  format: (v: number) => string;
  /** The axis' end for the largest value (default: 1, 2, 5 × 10^k). */
  nice?: (max: number) => number;
}): Chart {
  const { rows, series, stacked, format } = opts;
  const perRow = stacked ? 1 : series.length;
  const barH = stacked ? 14 : Math.max(5, Math.floor(16 / series.length));
  const rowH = stacked ? ROW_H : Math.max(ROW_H, perRow * (barH + 2) + 8);
  const totals = rows.map((r) =>
    stacked ? r.values.reduce((a, b) => a + b, 0) : Math.max(0, ...r.values),
  );
  const max = (opts.nice ?? niceMax)(Math.max(0, ...totals));
  const plotW = WIDTH - LABEL_W - RIGHT_PAD;
  const scale = (v: number) => (v / max) * plotW;
  const height = TOP + rows.length * rowH + AXIS_H;
  const rects: Rect[] = [];
  const labels: Label[] = [];
  const grid: Line[] = [];
  for (const f of [0, 0.5, 1]) {
    const x = round(LABEL_W + f * plotW);
    grid.push({ x1: x, y1: TOP, x2: x, y2: TOP + rows.length * rowH });
    labels.push({
      x,
      y: TOP + rows.length * rowH + 15,
      text: format(max * f),
      anchor: f === 0 ? 'start' : f === 1 ? 'end' : 'middle',
      cls: 'axis',
    });
  }
  rows.forEach((row, i) => {
    const y0 = TOP + i * rowH;
    labels.push({
      x: LABEL_W - 8,
      y: round(y0 + rowH / 2 + 4),
      text: cut(row.label),
      anchor: 'end',
      cls: 'name',
    });
    if (stacked) {
      let x = LABEL_W;
      row.values.forEach((v, j) => {
        if (v <= 0) return;
        const w = scale(v);
        rects.push({
          x: round(x),
          y: round(y0 + (rowH - barH) / 2),
          w: round(Math.max(1, w)),
          h: barH,
          cls: series[j]!.cls,
          title: `${row.label}: ${series[j]!.label} ${format(v)}`,
        });
        x += w;
      });
      labels.push({
        x: round(x + 6),
        y: round(y0 + rowH / 2 + 4),
        text: format(totals[i]!),
        anchor: 'start',
        cls: 'value',
      });
    } else {
      const block = perRow * (barH + 2) - 2;
      row.values.forEach((v, j) => {
        const y = y0 + (rowH - block) / 2 + j * (barH + 2);
        if (v > 0)
          rects.push({
            x: LABEL_W,
            y: round(y),
            w: round(Math.max(1, scale(v))),
            h: barH,
            cls: series[j]!.cls,
            title: `${row.label}: ${series[j]!.label} ${format(v)}`,
          });
        labels.push({
          x: round(LABEL_W + scale(v) + 6),
          y: round(y + barH - 1),
          text: format(v),
          anchor: 'start',
          cls: 'value small',
        });
      });
    }
  });
  return {
    id: opts.id,
    title: opts.title,
    summary: opts.summary,
    width: WIDTH,
    height,
    rects,
    labels,
    grid,
    legend: series.map((s) => ({ cls: s.cls, text: s.label })),
  };
}

const round = (v: number) => Math.round(v * 10) / 10;
