// Workflows: open one by id, or pick from those on the event feed. The API has no
// "list workflows" call, so the list is rebuilt from the feed's workflow_submitted and
// workflow_finished events (replayed from the start of the retained stream), newest first.

import { watch } from "../api.js";
import { clear, fmtAgo, fmtNum, h, link, route, throttle } from "../dom.js";

const KEEP = 2000;

export async function mount(view) {
  const input = h("input", { name: "id", placeholder: "wf_…", size: 32, "data-role": "workflow-id", required: true });
  const form = h("form", { class: "toolbar" }, h("label", null, "Workflow id", input), h("button", { type: "submit", class: "primary" }, "Open"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = input.value.trim();
    if (id) location.hash = route("workflows", id);
  });
  const body = h("tbody");
  const count = h("span", { class: "muted small" });
  view.append(
    h("h1", null, "Workflows ", count),
    form,
    h("div", { class: "panel" },
      h("table", { class: "data", "data-role": "workflow-list" },
        h("thead", null, h("tr", null, ["Workflow", "Name", "Tasks", "Submitted", "State"].map((c) => h("th", null, c)))),
        body)),
  );

  const byId = new Map(); // id -> {id, name, nodes, at, state}
  const render = throttle(() => {
    const rows = [...byId.values()].sort((a, b) => b.at - a.at).slice(0, 500);
    count.textContent = `${fmtNum(byId.size)} on the event feed`;
    clear(body);
    if (!rows.length) body.append(h("tr", null, h("td", { colspan: 5, class: "muted" }, "No workflows on the event feed yet.")));
    for (const w of rows) {
      body.append(h("tr", { "data-workflow": w.id },
        h("td", null, link(["workflows", w.id], { class: "mono" }, w.id)),
        h("td", null, w.name),
        h("td", { class: "num" }, fmtNum(w.nodes)),
        h("td", null, fmtAgo(w.at)),
        h("td", null, h("span", { class: `pill ${w.state === "succeeded" ? "ok" : w.state ? "bad" : ""}` }, w.state || "running"))));
    }
  }, 300);

  const stop = watch({ kinds: ["workflow_submitted", "workflow_finished"], after: 0 }, (kind, ev) => {
    if (kind === "workflow_submitted") {
      const known = byId.get(ev.id);
      byId.set(ev.id, { id: ev.id, name: ev.name, nodes: Object.keys(ev.nodes || {}).length, at: ev.at, state: known ? known.state : null });
      if (byId.size > KEEP) {
        const oldest = [...byId.values()].sort((a, b) => a.at - b.at)[0];
        byId.delete(oldest.id);
      }
    } else {
      const w = byId.get(ev.id);
      if (w) w.state = ev.state;
    }
    render();
  });
  render();
  return () => {
    stop();
    render.cancel();
  };
}
