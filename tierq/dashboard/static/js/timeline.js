// Horizontal time bars in SVG: the attempts of a task, or the tasks of a workflow (Gantt).
// Each row: an optional waiting span (queued/assigned) and a running span coloured by state.

import { STATE_COLORS, clear, fmtDuration, stateColor, svg } from "./dom.js";

// States, and the outcomes of attempts that are not states (coloured as a dead task).
const COLORS = { ...STATE_COLORS, lost: STATE_COLORS.dead, timeout: STATE_COLORS.dead };

export function colorOf(state) {
  return COLORS[state] || stateColor(state);
}

/**
 * rows: [{label, wait: [t0, t1] | null, run: [t0, t1] | null, state, title, onClick}]
 * Times are epoch seconds; `now` closes spans still open.
 */
export function drawTimeline(el, rows, { now = Date.now() / 1000, labelWidth = 170, rowHeight = 20, width } = {}) {
  clear(el);
  const times = rows.flatMap((r) => [...(r.wait || []), ...(r.run || [])]).filter((t) => t !== null && t !== undefined);
  if (!times.length) {
    el.append(svg("svg", { width: 10, height: 10 }));
    return;
  }
  const t0 = Math.min(...times);
  // Up to now while something still runs or waits; else up to the last end.
  const open = rows.some((r) => (r.run && r.run[0] && !r.run[1]) || (r.wait && r.wait[0] && !r.wait[1] && !r.run));
  const t1 = open ? Math.max(now, ...times) : Math.max(...times);
  const span = Math.max(t1 - t0, 0.001);
  const w = Math.max(400, width || el.clientWidth || 800);
  const plotW = w - labelWidth - 16;
  const x = (t) => labelWidth + ((t - t0) / span) * plotW;
  const height = 24 + rows.length * rowHeight;
  const root = svg("svg", { width: w, height, viewBox: `0 0 ${w} ${height}`, role: "img", "aria-label": "timeline" });
  const axis = svg("g", { class: "axis" });
  for (let i = 0; i <= 5; i++) {
    const t = t0 + (span * i) / 5;
    const xx = x(t);
    axis.append(
      svg("line", { x1: xx, x2: xx, y1: 16, y2: height }),
      svg("text", { x: xx, y: 11, "text-anchor": i === 0 ? "start" : i === 5 ? "end" : "middle" }, `+${fmtDuration(t - t0)}`),
    );
  }
  root.append(axis);
  rows.forEach((r, i) => {
    const y = 22 + i * rowHeight;
    const g = svg("g", { class: "row", "data-row": String(i) });
    g.append(svg("text", { x: 4, y: y + rowHeight * 0.62 }, r.label.length > 26 ? r.label.slice(0, 25) + "…" : r.label));
    if (r.wait && r.wait[0] !== null && r.wait[0] !== undefined) {
      const a = x(r.wait[0]);
      const b = x(r.wait[1] ?? now);
      g.append(svg("rect", { class: "wait", x: a, y: y + 5, width: Math.max(1, b - a), height: rowHeight - 10 }));
    }
    if (r.run && r.run[0] !== null && r.run[0] !== undefined) {
      const a = x(r.run[0]);
      const b = x(r.run[1] ?? now);
      const bar = svg("rect", { class: "run", x: a, y: y + 2, width: Math.max(2, b - a), height: rowHeight - 4, fill: colorOf(r.state) });
      bar.append(svg("title", null, r.title || ""));
      g.append(bar);
    }
    if (r.onClick) {
      g.addEventListener("click", r.onClick);
      g.setAttribute("cursor", "pointer");
    }
    root.append(g);
  });
  el.append(root);
}
