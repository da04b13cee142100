// One workflow: its graph (layered layout, live node colours, click a node for its task),
// progress, counts by state, and a Gantt-style timeline of its tasks.

import { enc, get, send, watch } from "../api.js";
import {
  STATES, TERMINAL, badge, clear, confirmDialog, errorBox, fmtNum, fmtTime, h, progressBar, route,
  section, setProgress, throttle, toast,
} from "../dom.js";
import { DRAW_LIMIT, createDag } from "../dag.js";
import { TASK_KINDS, applyEvent, perTask } from "../live.js";
import { colorOf, drawTimeline } from "../timeline.js";

const GANTT_LIMIT = 5000;

export async function mount(view, r) {
  const id = r.id;
  const path = `/v1/workflows/${enc(id)}`;
  let wf;
  try {
    wf = await get(path);
    // A large workflow comes a page of nodes at a time (counts always cover all of it).
    while (wf.next_cursor) {
      const page = await get(path, { cursor: wf.next_cursor });
      page.nodes = wf.nodes.concat(page.nodes);
      page.edges = wf.edges.concat(page.edges);
      wf = page;
    }
  } catch (err) {
    view.append(h("h1", null, "Workflow ", h("span", { class: "mono" }, id)), errorBox(err));
    return null;
  }
  const states = new Map(wf.nodes.map((n) => [n.task_id, { state: n.state || "evicted" }]));
  const stateEl = h("span", { "data-role": "workflow-state" });
  const bar = progressBar(0);
  bar.dataset.role = "workflow-progress";
  const counts = h("div", { class: "summary", "data-role": "workflow-counts" });
  const actionError = h("div");
  const graphBox = h("div", { class: "dag" });
  const ganttBox = h("div", { class: "gantt", hidden: true, "data-role": "gantt" });
  const tabGraph = h("button", { type: "button", class: "active", "data-tab": "graph" }, "Graph");
  const tabGantt = h("button", { type: "button", "data-tab": "timeline" }, "Timeline");
  // Every state a node can be drawn in, evicted (no longer in memory) included.
  const legend = h("div", { class: "legend", "data-role": "legend" }, [...STATES, "evicted"].map((s) =>
    h("span", { "data-state": s }, h("span", { class: "sw", css: { background: colorOf(s) } }), s)));

  const cancelButton = h("button", { type: "button", class: "danger small", "data-action": "cancel-workflow", on: { click: cancel } }, "Cancel workflow");
  view.append(
    h("h1", null, wf.name, stateEl, h("span", { class: "mono small muted" }, id)),
    section("Progress", bar, h("div", { class: "actions" }, counts,
      h("span", { class: "muted small" }, `policy ${wf.policy} · submitted ${fmtTime(wf.submitted_at)}`),
      cancelButton),
      actionError),
    h("div", { class: "tabs" }, tabGraph, tabGantt),
    graphBox, ganttBox, h("div", { class: "panel small" }, legend),
  );

  async function cancel() {
    if (!(await confirmDialog("Cancel workflow", `Cancel every unfinished task of ${wf.name} (${id})?`, "Cancel workflow", true))) return;
    clear(actionError);
    try {
      await send("POST", `${path}/cancel`);
      toast("Workflow cancelled");
    } catch (err) {
      clear(actionError).append(errorBox(err));
    }
  }

  function renderSummary() {
    const by = {};
    let done = 0;
    for (const { state } of states.values()) {
      by[state] = (by[state] || 0) + 1;
      if (TERMINAL.has(state) || state === "evicted") done += 1;
    }
    setProgress(bar, states.size ? done / states.size : 0, `${fmtNum(done)} / ${fmtNum(states.size)} done`);
    // Green for what succeeded, red for what ended otherwise: a failed run is not all green.
    const good = done ? (100 * (by.succeeded || 0)) / done : 100;
    bar.querySelector(".bar-fill").style.background =
      `linear-gradient(to right, var(--s-succeeded) ${good.toFixed(1)}%, var(--s-dead) ${good.toFixed(1)}%)`;
    bar.dataset.failed = String(good < 100);
    // A finished workflow has nothing left to cancel.
    cancelButton.disabled = Boolean(wf.state);
    cancelButton.title = wf.state ? `already ${wf.state}` : "";
    clear(counts).append(...Object.entries(by).sort((a, b) => STATES.indexOf(a[0]) - STATES.indexOf(b[0]))
      .map(([s, n]) => h("span", { "data-count": s }, badge(s), " ", fmtNum(n))));
    clear(stateEl).append(h("span", { class: `pill ${wf.state === "succeeded" ? "ok" : wf.state ? "bad" : ""}` }, wf.state || "running"));
  }

  // --- graph -------------------------------------------------------------------------------
  let dag = null;
  if (wf.nodes.length <= DRAW_LIMIT) {
    dag = createDag(graphBox, { onOpen: (taskId) => { location.hash = route("tasks", taskId); } });
    dag.setGraph(
      wf.nodes.map((n) => ({ id: n.task_id, label: n.key, state: n.state, level: n.level, title: `${n.key} · ${n.name} · ${n.task_id}` })),
      wf.edges,
    );
  } else {
    graphBox.classList.add("panel");
    graphBox.classList.remove("dag");
  }
  const levelSummary = throttle(() => {
    if (dag) return;
    const levels = new Map();
    wf.nodes.forEach((n) => {
      if (!levels.has(n.level)) levels.set(n.level, {});
      const s = states.get(n.task_id).state;
      const c = levels.get(n.level);
      c[s] = (c[s] || 0) + 1;
    });
    const rows = [...levels.entries()].sort((a, b) => a[0] - b[0]).slice(0, 500);
    clear(graphBox).append(
      h("p", { class: "muted" }, `${fmtNum(wf.nodes.length)} tasks is more than the graph view draws (${fmtNum(DRAW_LIMIT)}); here is each level of the graph by state.`),
      h("div", { class: "level-summary" }, rows.map(([level, c]) => {
        const total = Object.values(c).reduce((a, b) => a + b, 0);
        return [h("span", { class: "mono" }, `level ${level}`),
          h("div", { class: "stacked" }, STATES.filter((s) => c[s]).map((s) => h("span", { title: `${s}: ${c[s]}`, css: { width: `${(100 * c[s]) / total}%`, background: colorOf(s) } }))),
          h("span", { class: "small" }, `${fmtNum(total)} tasks`)];
      })),
    );
  }, 1000);
  levelSummary();

  // --- timeline ----------------------------------------------------------------------------
  let ganttShown = false;
  async function loadTasks() {
    const tasks = [];
    let cursor;
    do {
      const page = await get("/v1/tasks", { workflow: id, limit: 1000, cursor });
      tasks.push(...page.tasks);
      cursor = page.next_cursor;
    } while (cursor && tasks.length < GANTT_LIMIT);
    return tasks;
  }
  const drawGantt = throttle(async () => {
    if (!ganttShown) return;
    let tasks;
    try {
      tasks = await loadTasks();
    } catch (err) {
      clear(ganttBox).append(errorBox(err));
      return;
    }
    const keyOf = new Map(wf.nodes.map((n) => [n.task_id, n.key]));
    const rows = tasks.map((t) => {
      const ts = t.timestamps || {};
      const end = TERMINAL.has(t.state) ? ts[t.state] : null;
      const start = ts.running ?? null;
      return {
        sortKey: start ?? ts.assigned ?? ts.ready ?? Infinity,
        label: keyOf.get(t.id) || t.id,
        wait: ts.ready ? [ts.ready, start ?? end ?? null] : null,
        run: start ? [start, end] : null,
        state: t.state,
        title: `${keyOf.get(t.id) || t.id}: ${t.state}`,
        onClick: () => { location.hash = route("tasks", t.id); },
      };
    }).sort((a, b) => a.sortKey - b.sortKey);
    drawTimeline(ganttBox, rows, { rowHeight: 16, labelWidth: 160 });
  }, 2000);
  function showTab(which) {
    ganttShown = which === "timeline";
    tabGraph.classList.toggle("active", !ganttShown);
    tabGantt.classList.toggle("active", ganttShown);
    graphBox.hidden = ganttShown;
    ganttBox.hidden = !ganttShown;
    if (ganttShown) drawGantt();
    else if (dag) dag.fit();
  }
  tabGraph.addEventListener("click", () => showTab("graph"));
  tabGantt.addEventListener("click", () => showTab("timeline"));

  // --- live --------------------------------------------------------------------------------
  const summary = throttle(renderSummary, 100);
  // Re-read the workflow: on each (re)connect of the feed, and now and then while it runs
  // (a safety net; the feed is what keeps the page live).
  async function resync() {
    let again;
    try {
      again = await get(path);
    } catch {
      return;
    }
    wf.state = again.state || wf.state;
    for (const n of again.nodes) {
      const rec = states.get(n.task_id);
      const state = n.state || "evicted";
      // A snapshot read while events arrive may be older than what they said.
      if (rec && rec.state !== state && !(TERMINAL.has(rec.state) && !TERMINAL.has(state))) {
        rec.state = state;
        if (dag) dag.setState(n.task_id, state);
      }
    }
    renderSummary();
    levelSummary();
  }
  const every = setInterval(() => { if (!wf.state) resync(); }, 10_000);
  const stop = watch({ workflow: id, kinds: [...TASK_KINDS, "workflow_finished", "tasks_evicted"] }, (kind, ev) => {
    if (kind === "workflow_finished") {
      wf.state = ev.state;
      summary();
      return;
    }
    if (kind === "tasks_evicted") return;
    // One update per task the event is about (a lease's tasks_assigned lists several).
    let ours = false;
    for (const [tid, k, one] of perTask(kind, ev)) {
      const rec = states.get(tid);
      if (!rec) continue;
      ours = true;
      if (applyEvent(rec, k, one) && dag) dag.setState(tid, rec.state);
    }
    if (!ours) return;
    summary();
    levelSummary();
    drawGantt();
  }, { onOpen: resync });
  renderSummary();
  if (r.params.get("tab") === "timeline") showTab("timeline");

  return () => {
    stop();
    clearInterval(every);
    summary.cancel();
    drawGantt.cancel();
    levelSummary.cancel();
    if (dag) dag.destroy();
  };
}
