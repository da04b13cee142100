// Lays out a workflow graph with dagre off the page's thread: a 1,000-node graph takes
// a second or more, and the page stays responsive (it shows a quick layered draft meanwhile).

import { graphlib, layout } from "../vendor/dagre/dagre.esm.js";

self.onmessage = (ev) => {
  const { id, nodes, edges, nodeW, nodeH, ranker } = ev.data;
  const started = performance.now();
  const g = new graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 10, ranksep: 50, edgesep: 6, marginx: 20, marginy: 20, ranker });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) g.setNode(n, { width: nodeW, height: nodeH });
  for (const [a, b] of edges) g.setEdge(a, b);
  layout(g);
  const pos = {};
  for (const n of nodes) {
    const v = g.node(n);
    pos[n] = [v.x, v.y];
  }
  const paths = edges.map(([a, b]) => {
    const e = g.edge(a, b);
    return e && e.points ? e.points.map((p) => [p.x, p.y]) : null;
  });
  const graph = g.graph();
  self.postMessage({ id, pos, paths, width: graph.width, height: graph.height, ms: performance.now() - started });
};
