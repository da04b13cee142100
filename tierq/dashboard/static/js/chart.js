// Time-series charts over the last minutes, drawn by uPlot (canvas).

import uPlot from "../vendor/uplot/uPlot.esm.js";

function clock(t) {
  const d = new Date(t * 1000);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

/**
 * A line chart of `series` ({label, color, fmt}) over time, keeping `span` seconds.
 * push(t, values) adds a point (t in epoch seconds), set(xs, columns) replaces them all;
 * destroy() frees it.
 */
export function timeChart(el, { series, span = 300, height = 200, yLabel = "" }) {
  const data = [[], ...series.map(() => [])];
  const opts = {
    width: Math.max(300, el.clientWidth || 600),
    height,
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
    scales: {
      // The points so far (at least 30 s), up to the last `span` seconds. uPlot would
      // otherwise pick a range of years around a single timestamp.
      x: {
        time: true,
        range: (u, min, max) => {
          const end = max ?? Date.now() / 1000;
          return [Math.min(end - 30, Math.max(min ?? end, end - span)), end];
        },
      },
      y: { range: (u, min, max) => [0, Math.max(1, (max ?? 0) * 1.1)] },
    },
    axes: [
      { stroke: "#6b7280", grid: { stroke: "#f0f1f3" }, values: (u, splits) => splits.map(clock) },
      { stroke: "#6b7280", grid: { stroke: "#f0f1f3" }, label: yLabel, size: 56 },
    ],
    series: [
      {},
      ...series.map((s) => ({
        label: s.label,
        stroke: s.color,
        width: 2,
        // uPlot's default: dots only while they are sparse (a chart's first readings show).
        points: { size: 5 },
        value: (u, v) => (v === null || v === undefined ? "–" : (s.fmt ? s.fmt(v) : v.toFixed(1))),
      })),
    ],
  };
  const plot = new uPlot(opts, data, el);
  const resize = new ResizeObserver(() => {
    const w = el.clientWidth;
    if (w > 0 && Math.abs(w - plot.width) > 4) plot.setSize({ width: w, height });
  });
  resize.observe(el);
  return {
    series,
    /** Replace every point: xs (epoch seconds, ascending) and one column per series. */
    set(xs, columns) {
      data[0] = xs.slice();
      columns.forEach((col, i) => { data[i + 1] = col.slice(); });
      plot.setData(data);
      el.dataset.points = String(data[0].length);
    },
    push(t, values) {
      data[0].push(t);
      values.forEach((v, i) => data[i + 1].push(v));
      while (data[0].length && data[0][0] < t - span) for (const col of data) col.shift();
      plot.setData(data);
      el.dataset.points = String(data[0].length);
    },
    destroy() {
      resize.disconnect();
      plot.destroy();
    },
  };
}
