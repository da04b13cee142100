// The workflow graph: SVG, laid out by dagre (in a Web Worker) left to right, with pan
// (drag), zoom (wheel, buttons) and fit. Nodes carry their task's state as a class, so a
// live event recolours one node without touching the rest.
//
// Sizes: up to LAYOUT_LIMIT nodes get the full dagre layout (a layered draft by topological
// level shows at once, and is replaced when dagre is done); up to DRAW_LIMIT nodes are
// drawn in the draft layout only; beyond that the caller shows a per-level summary.

import { h, svg } from "./dom.js";

export const LAYOUT_LIMIT = 2500;
export const DRAW_LIMIT = 6000;
const NODE_W = 150;
const NODE_H = 26;
const COL = NODE_W + 50;
const ROW = NODE_H + 10;

function label(text) {
  return text.length > 22 ? text.slice(0, 21) + "…" : text;
}

/** A layered draft: x by topological level, y by order within the level (barycentre). */
function draft(nodes, parents) {
  const byLevel = new Map();
  for (const n of nodes) {
    if (!byLevel.has(n.level)) byLevel.set(n.level, []);
    byLevel.get(n.level).push(n);
  }
  const levels = [...byLevel.keys()].sort((a, b) => a - b);
  const tallest = Math.max(...levels.map((l) => byLevel.get(l).length));
  const pos = new Map();
  for (const l of levels) {
    const col = byLevel.get(l);
    const bary = (n) => {
      const ps = (parents.get(n.id) || []).map((p) => pos.get(p)).filter(Boolean);
      return ps.length ? ps.reduce((s, p) => s + p[1], 0) / ps.length : Infinity;
    };
    const keyed = col.map((n, i) => [bary(n), i, n]).sort((a, b) => (a[0] - b[0]) || (a[1] - b[1]));
    const offset = ((tallest - col.length) * ROW) / 2;
    keyed.forEach(([, , n], i) => pos.set(n.id, [20 + l * COL + NODE_W / 2, 20 + offset + i * ROW + NODE_H / 2]));
  }
  return { pos, width: 40 + levels.length * COL, height: 40 + tallest * ROW };
}

/** A small triangle with its tip at ``to``, pointing along ``from`` -> ``to``. */
function arrowHead(from, to, size = 6) {
  const dx = to[0] - from[0];
  const dy = to[1] - from[1];
  const len = Math.hypot(dx, dy) || 1;
  const ux = dx / len;
  const uy = dy / len;
  const bx = to[0] - ux * size;
  const by = to[1] - uy * size;
  const px = -uy * size * 0.5;
  const py = ux * size * 0.5;
  return `M${to[0].toFixed(1)} ${to[1].toFixed(1)}L${(bx + px).toFixed(1)} ${(by + py).toFixed(1)}`
    + `L${(bx - px).toFixed(1)} ${(by - py).toFixed(1)}Z`;
}

export function createDag(container, { onOpen, onLayout } = {}) {
  const root = svg("svg", { role: "img", "aria-label": "workflow graph", "data-role": "dag" });
  const viewport = svg("g", { class: "viewport" });
  const edgePath = svg("path", { "data-role": "edges" });
  // One filled path of small triangles, one per edge end: which way a dependency points.
  const arrowPath = svg("path", { "data-role": "arrows", class: "arrows" });
  const edgesG = svg("g", { class: "edges" }, edgePath, arrowPath);
  const nodesG = svg("g", { class: "nodes" });
  viewport.append(edgesG, nodesG);
  root.append(viewport);
  const status = h("div", { class: "status", "data-role": "dag-status" });
  const controls = h("div", { class: "controls" },
    h("button", { type: "button", class: "small", title: "Zoom in", on: { click: () => zoomBy(1.3) } }, "+"),
    h("button", { type: "button", class: "small", title: "Zoom out", on: { click: () => zoomBy(1 / 1.3) } }, "−"),
    h("button", { type: "button", class: "small", title: "Fit the graph", "data-role": "fit", on: { click: () => fit() } }, "Fit"));
  container.append(root, controls, status);

  const nodes = new Map(); // task id -> {g, state}
  let edges = [];
  let size = { width: 100, height: 100 };
  let t = { x: 0, y: 0, k: 1 };
  let worker = null;
  let selected = null;
  let layoutId = 0;

  function apply() {
    viewport.setAttribute("transform", `translate(${t.x.toFixed(1)},${t.y.toFixed(1)}) scale(${t.k.toFixed(4)})`);
    root.classList.toggle("far", t.k < 0.45);
    root.dataset.zoom = t.k.toFixed(3);
  }

  function fit() {
    const w = root.clientWidth || 800;
    const hgt = root.clientHeight || 500;
    const k = Math.min(1.2, Math.max(0.02, Math.min(w / size.width, hgt / size.height) * 0.95));
    t = { k, x: (w - size.width * k) / 2, y: (hgt - size.height * k) / 2 };
    apply();
  }

  function zoomAt(px, py, factor) {
    const k = Math.min(4, Math.max(0.02, t.k * factor));
    t = { k, x: px - ((px - t.x) * k) / t.k, y: py - ((py - t.y) * k) / t.k };
    apply();
  }

  function zoomBy(factor) {
    zoomAt((root.clientWidth || 800) / 2, (root.clientHeight || 500) / 2, factor);
  }

  root.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const r = root.getBoundingClientRect();
    zoomAt(ev.clientX - r.left, ev.clientY - r.top, Math.exp(-ev.deltaY * 0.0015));
  }, { passive: false });

  let drag = null;
  root.addEventListener("pointerdown", (ev) => {
    if (ev.button !== 0) return;
    drag = { x: ev.clientX, y: ev.clientY, tx: t.x, ty: t.y, moved: false, target: ev.target.closest(".node") };
    root.setPointerCapture(ev.pointerId);
  });
  root.addEventListener("pointermove", (ev) => {
    if (!drag) return;
    const dx = ev.clientX - drag.x;
    const dy = ev.clientY - drag.y;
    if (!drag.moved && Math.hypot(dx, dy) < 4) return;
    drag.moved = true;
    root.classList.add("dragging");
    t = { ...t, x: drag.tx + dx, y: drag.ty + dy };
    apply();
  });
  root.addEventListener("pointerup", (ev) => {
    const d = drag;
    drag = null;
    root.classList.remove("dragging");
    if (root.hasPointerCapture(ev.pointerId)) root.releasePointerCapture(ev.pointerId);
    if (d && !d.moved && d.target) {
      const id = d.target.dataset.task;
      select(id);
      if (onOpen) onOpen(id);
    }
  });

  function select(id) {
    if (selected) nodes.get(selected)?.g.classList.remove("selected");
    selected = id;
    nodes.get(id)?.g.classList.add("selected");
  }

  function place(pos, paths) {
    for (const [id, n] of nodes) {
      const p = pos.get ? pos.get(id) : pos[id];
      if (p) n.g.setAttribute("transform", `translate(${(p[0] - NODE_W / 2).toFixed(1)},${(p[1] - NODE_H / 2).toFixed(1)})`);
    }
    const get = (id) => (pos.get ? pos.get(id) : pos[id]);
    const parts = [];
    const heads = [];
    edges.forEach(([a, b], i) => {
      const pts = paths && paths[i];
      if (pts && pts.length > 1) {
        parts.push(`M${pts[0][0].toFixed(1)} ${pts[0][1].toFixed(1)}` + pts.slice(1).map((p) => `L${p[0].toFixed(1)} ${p[1].toFixed(1)}`).join(""));
        heads.push(arrowHead(pts[pts.length - 2], pts[pts.length - 1]));
        return;
      }
      const pa = get(a);
      const pb = get(b);
      if (pa && pb) {
        const from = [pa[0] + NODE_W / 2, pa[1]];
        const to = [pb[0] - NODE_W / 2, pb[1]];
        parts.push(`M${from[0].toFixed(1)} ${from[1].toFixed(1)}L${to[0].toFixed(1)} ${to[1].toFixed(1)}`);
        heads.push(arrowHead(from, to));
      }
    });
    edgePath.setAttribute("d", parts.join(""));
    arrowPath.setAttribute("d", heads.join(""));
  }

  /** nodes: [{id, label, state, level, title}], edges: [[parent id, child id]] */
  function setGraph(list, edgeList) {
    layoutId += 1;
    nodes.clear();
    nodesG.replaceChildren();
    edges = edgeList;
    const parents = new Map();
    for (const [a, b] of edgeList) {
      if (!parents.has(b)) parents.set(b, []);
      parents.get(b).push(a);
    }
    const frag = document.createDocumentFragment();
    for (const n of list) {
      const state = n.state || "evicted";
      const g = svg("g", { class: `node n-${state}`, "data-task": n.id, "data-state": state, "data-key": n.label },
        svg("rect", { width: NODE_W, height: NODE_H, rx: 5 }),
        svg("text", { x: 8, y: 17 }, label(n.label)),
        svg("title", null, n.title || n.label));
      nodes.set(n.id, { g, state });
      frag.append(g);
    }
    nodesG.append(frag);
    const d = draft(list, parents);
    size = { width: d.width, height: d.height };
    place(d.pos, null);
    fit();
    if (list.length <= LAYOUT_LIMIT && list.length > 1) {
      status.textContent = `Laying out ${list.length} nodes…`;
      root.dataset.layout = "draft";
      runLayout(list.map((n) => n.id), edgeList);
    } else {
      root.dataset.layout = "levels";
      status.textContent = list.length > 1 ? `${list.length} nodes: drawn by level (too many for the full layout)` : "";
    }
  }

  function runLayout(ids, edgeList) {
    if (!worker) worker = new Worker(new URL("./dag-worker.js", import.meta.url), { type: "module" });
    const id = layoutId;
    worker.onmessage = (ev) => {
      if (ev.data.id !== layoutId) return;
      size = { width: ev.data.width, height: ev.data.height };
      place(ev.data.pos, ev.data.paths);
      fit();
      root.dataset.layout = "dagre";
      status.textContent = `${ids.length} nodes · laid out in ${(ev.data.ms / 1000).toFixed(2)} s`;
      if (onLayout) onLayout(ev.data.ms);
    };
    worker.onerror = (ev) => {
      status.textContent = `Layout failed (${ev.message || "worker error"}); showing the draft`;
    };
    worker.postMessage({ id, nodes: ids, edges: edgeList, nodeW: NODE_W, nodeH: NODE_H, ranker: ids.length <= 200 ? "network-simplex" : "tight-tree" });
  }

  function setState(id, state) {
    const n = nodes.get(id);
    if (!n || n.state === state) return false;
    n.g.classList.remove(`n-${n.state}`);
    n.g.classList.add(`n-${state}`);
    n.g.dataset.state = state;
    n.state = state;
    return true;
  }

  const resize = new ResizeObserver(() => fit());
  resize.observe(container);

  return {
    setGraph,
    setState,
    select,
    fit,
    has: (id) => nodes.has(id),
    destroy() {
      resize.disconnect();
      if (worker) worker.terminate();
    },
  };
}
