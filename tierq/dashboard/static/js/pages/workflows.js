// Workflows: open one by id, or pick from the list (GET /v1/workflows, newest first, a page
// at a time). The event feed keeps the rows live: new workflows appear at the top, finished
// ones change state.

import { get, watch } from "../api.js";
import { clear, errorBox, fmtAgo, fmtNum, fmtTime, h, link, route, throttle } from "../dom.js";

const PAGE = 100;
const STATES = ["", "running", "succeeded", "failed", "cancelled"];

export async function mount(view) {
  const input = h("input", { name: "id", placeholder: "wf_…", size: 32, "data-role": "workflow-id", required: true });
  const form = h("form", { class: "toolbar" }, h("label", null, "Workflow id", input), h("button", { type: "submit", class: "primary" }, "Open"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = input.value.trim();
    if (id) location.hash = route("workflows", id);
  });
  const stateSelect = h("select", { name: "state", "data-role": "workflow-state-filter" },
    STATES.map((s) => h("option", { value: s }, s || "any state")));
  const body = h("tbody");
  const count = h("span", { class: "muted small" });
  const more = h("button", { type: "button", hidden: true, "data-action": "more-workflows" }, "Load older");
  const problem = h("div");
  view.append(
    h("h1", null, "Workflows ", count),
    form,
    h("div", { class: "toolbar" }, h("label", null, "State", stateSelect)),
    problem,
    h("div", { class: "panel" },
      h("table", { class: "data", "data-role": "workflow-list" },
        h("thead", null, h("tr", null, ["Workflow", "Name", "Tasks", "Done", "Submitted", "State"].map((c) => h("th", null, c)))),
        body),
      more),
  );

  let rows = []; // WorkflowSummary documents, newest first
  let cursor = null;

  const render = throttle(() => {
    const state = stateSelect.value;
    const shown = rows.filter((w) => !state || (w.state || "running") === state);
    count.textContent = `${fmtNum(shown.length)} shown`;
    clear(body);
    if (!shown.length) body.append(h("tr", null, h("td", { colspan: 6, class: "muted" }, "No workflows.")));
    for (const w of shown) {
      body.append(h("tr", { "data-workflow": w.id },
        h("td", null, link(["workflows", w.id], { class: "mono" }, w.id)),
        h("td", null, w.name),
        h("td", { class: "num" }, fmtNum(w.total)),
        h("td", { class: "num" }, fmtNum(w.done)),
        h("td", { title: fmtTime(w.submitted_at), "data-role": "submitted" }, fmtAgo(w.submitted_at)),
        h("td", null, h("span", { class: `pill ${w.state === "succeeded" ? "ok" : w.state ? "bad" : ""}` }, w.state || "running"))));
    }
    more.hidden = !cursor;
  }, 300);

  async function load(reset) {
    clear(problem);
    const params = { limit: PAGE };
    if (stateSelect.value) params.state = stateSelect.value;
    if (!reset && cursor) params.cursor = cursor;
    try {
      const page = await get("/v1/workflows", params);
      const known = new Set(reset ? [] : rows.map((w) => w.id));
      rows = (reset ? [] : rows).concat(page.workflows.filter((w) => !known.has(w.id)));
      cursor = page.next_cursor;
    } catch (err) {
      problem.append(errorBox(err));
    }
    render();
  }
  more.addEventListener("click", () => load(false));
  stateSelect.addEventListener("change", () => load(true));

  const byId = (id) => rows.find((w) => w.id === id);
  const stop = watch({ kinds: ["workflow_submitted", "workflow_finished"] }, (kind, ev) => {
    if (kind === "workflow_submitted") {
      if (!byId(ev.id)) {
        const total = Object.keys(ev.nodes || {}).length;
        rows.unshift({ id: ev.id, name: ev.name, policy: ev.policy, submitted_at: ev.at, total, done: 0, state: null, finished_at: null });
      }
    } else {
      const w = byId(ev.id);
      if (w) {
        w.state = ev.state;
        w.finished_at = ev.at;
        w.done = w.total; // finished: every task is terminal
      }
    }
    render();
  }, { onOpen: () => load(true) });
  await load(true);
  return () => {
    stop();
    render.cancel();
  };
}
