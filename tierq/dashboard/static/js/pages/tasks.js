// Tasks: filter by state, name, region, queue, workflow and submission time; newest first
// (or oldest first). The list is read page by page with the API's cursor (never everything),
// towards older tasks when newest first, drawn as a virtual list, and kept live from the
// event feed: loaded rows follow their tasks, and tasks submitted since are counted and
// brought in on request where the order puts them (at the top when newest first).

import { get, watch } from "../api.js";
import { STATES, badge, clear, errorBox, fmtAgo, fmtNum, fmtTime, h, idTime, link, progressBar } from "../dom.js";
import { TASK_KINDS, applyEvent, perTask, rawId } from "../live.js";
import { virtualList } from "../vlist.js";

const PAGE = 200;
//: Rows kept in the browser at most; past this the user is asked to narrow the filter.
const MAX_ROWS = 50_000;
const SINCE = [["", "any time"], ["5", "last 5 min"], ["15", "last 15 min"], ["60", "last hour"], ["1440", "last 24 h"]];
const ORDERS = [["", "newest first"], ["oldest", "oldest first"]];

/** A list cursor that starts at a submission time: ids begin with 12 hex digits of ms. */
function timeCursor(minutes) {
  const ms = Math.floor(Date.now() - minutes * 60_000);
  return ms.toString(16).padStart(12, "0");
}

export async function mount(view, route) {
  const p = route.params;
  const filters = {
    state: p.get("state") || "",
    name: p.get("name") || "",
    region: p.get("region") || "",
    queue: p.get("queue") || "",
    workflow: p.get("workflow") || "",
    since: p.get("since") || "",
    order: p.get("order") === "oldest" ? "oldest" : "",
  };
  const newest = filters.order !== "oldest";
  const input = (name, placeholder) => h("input", { name, placeholder, value: filters[name], size: 18, "data-filter": name });
  const form = h("form", { class: "toolbar", "data-role": "filters" },
    h("label", null, "State", h("select", { name: "state", "data-filter": "state" },
      h("option", { value: "" }, "any"),
      STATES.map((s) => h("option", { value: s, selected: s === filters.state }, s)))),
    h("label", null, "Name", input("name", "exact task name")),
    h("label", null, "Region", input("region", "region")),
    h("label", null, "Queue", input("queue", "queue")),
    h("label", null, "Workflow", input("workflow", "workflow id")),
    h("label", null, "Submitted", h("select", { name: "since", "data-filter": "since" },
      SINCE.map(([v, label]) => h("option", { value: v, selected: v === filters.since }, label)))),
    h("label", null, "Order", h("select", { name: "order", "data-filter": "order" },
      ORDERS.map(([v, label]) => h("option", { value: v, selected: v === filters.order }, label)))),
    h("button", { type: "submit", class: "primary" }, "Apply"),
    h("button", { type: "button", class: "secondary", on: { click: () => { location.hash = "#/tasks"; } } }, "Clear"),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (String(v).trim()) q.set(k, String(v).trim());
    const next = `#/tasks${q.toString() ? "?" + q : ""}`;
    if (location.hash === next) reload();
    else location.hash = next;
  });

  const status = h("span", { class: "muted small", "data-role": "list-status" });
  const fresh = h("button", { type: "button", class: "small", hidden: true, "data-role": "new-tasks", on: { click: () => bringNew() } });
  const error = h("div");
  const box = h("div", { class: "vlist", "data-role": "task-list" });
  view.append(h("h1", null, "Tasks ", status, fresh), form, error, box);

  const head = h("div", { class: "vhead tasks-grid" },
    ["Id", "Name", "State", "Priority", "Region", "Worker", "Attempt", "Submitted", "Progress"].map((c) => h("span", null, c)));
  const index = new Map(); // task id -> row index
  const list = virtualList(box, {
    header: head,
    renderRow: (t) => h("div", { class: "tasks-grid", "data-task": t.id },
      link(["tasks", t.id], { class: "mono" }, t.id),
      h("span", { title: t.spec.name, "data-role": "task-name" }, t.spec.name),
      h("span", null, badge(t.state)),
      h("span", { class: "num" }, String(t.priority ?? t.spec.priority ?? 0)),
      h("span", null, t.region || "–"),
      h("span", { class: "mono small", title: t.worker || "" }, t.worker || "–"),
      h("span", { class: "num" }, String(t.attempt || 1)),
      h("span", { class: "small", title: fmtTime(t.submitted_at), "data-role": "submitted" }, fmtAgo(t.submitted_at)),
      progressBar(t.state === "succeeded" ? 1 : t.progress || 0),
    ),
    onNearEnd: () => more(),
  });

  let cursor = null;
  let done = false;
  let loading = null;
  let generation = 0;
  let added = 0;
  const query = () => ({
    state: filters.state || undefined,
    name: filters.name || undefined,
    region: filters.region || undefined,
    queue: filters.queue || undefined,
    workflow: filters.workflow || undefined,
    order: newest ? "newest" : undefined,
    limit: PAGE,
  });
  // Newest first, the pages go back in time: past the "since" time there is nothing to show.
  const sinceFrom = () => (filters.since ? Date.now() / 1000 - Number(filters.since) * 60 : null);
  const pastSince = (next) => {
    const from = sinceFrom();
    return newest && from !== null && next && (idTime(next) ?? Infinity) < from;
  };

  async function more() {
    if (done || loading) return loading;
    const gen = generation;
    loading = (async () => {
      try {
        const q = query();
        const start = cursor ?? (filters.since && !filters.workflow && !newest ? timeCursor(Number(filters.since)) : undefined);
        let page = await get("/v1/tasks", { ...q, cursor: start });
        // The master examines a bounded number of tasks per call, so a selective filter can
        // give short pages that still have a cursor: read on until a page is full or the end.
        while (gen === generation && page.next_cursor && page.tasks.length < q.limit && !pastSince(page.next_cursor)) {
          const next = await get("/v1/tasks", { ...q, cursor: page.next_cursor });
          next.tasks = page.tasks.concat(next.tasks);
          page = next;
        }
        if (gen !== generation) return;
        let rows = page.tasks;
        const from = sinceFrom();
        if (from !== null) rows = rows.filter((t) => (idTime(t.id) ?? t.submitted_at) >= from);
        const base = list.items.length;
        rows.forEach((t, i) => index.set(t.id, base + i));
        list.append(rows);
        cursor = page.next_cursor;
        done = !cursor || pastSince(cursor) || list.items.length >= MAX_ROWS;
        showStatus();
        clear(error);
      } catch (err) {
        if (gen === generation) clear(error).append(errorBox(err));
        done = true;
      } finally {
        loading = null;
      }
    })();
    return loading;
  }

  function showStatus() {
    const n = list.items.length;
    status.textContent = `${fmtNum(n)}${done ? "" : "+"} task${n === 1 ? "" : "s"}`;
    list.footer(done
      ? (n >= MAX_ROWS ? `Showing the first ${fmtNum(MAX_ROWS)}; narrow the filter to see others.` : (n ? "End of list." : "No tasks match."))
      : "Loading more as you scroll…");
  }

  /**
   * Bring in the tasks submitted since the list was read, where the order puts them: newest
   * first, the ones after the top row (one page at most, else the list is read afresh) go on
   * top; oldest first, a list read to its end reads on from its last row.
   */
  async function bringNew() {
    added = 0;
    fresh.hidden = true;
    const items = list.items;
    if (!items.length || filters.since) return reload();
    if (!newest) {
      if (done && items.length < MAX_ROWS) {
        cursor = items[items.length - 1].id;
        done = false;
        return more();
      }
      return null;
    }
    const gen = generation;
    try {
      const q = { ...query(), order: undefined };
      const page = await get("/v1/tasks", { ...q, cursor: items[0].id });
      if (gen !== generation) return null;
      if (page.next_cursor) return reload();
      const rows = page.tasks.reverse();
      if (!rows.length) return null;
      const all = rows.concat(items);
      index.clear();
      all.forEach((t, i) => index.set(t.id, i));
      list.set(all);
      showStatus();
    } catch (err) {
      if (gen === generation) clear(error).append(errorBox(err));
    }
    return null;
  }

  function reload() {
    generation += 1;
    cursor = null;
    done = false;
    loading = null;
    added = 0;
    fresh.hidden = true;
    index.clear();
    list.set([]);
    return more();
  }

  // Live: update loaded rows in place; count new submissions that may match.
  const params = { kinds: [...TASK_KINDS, "task_submitted"] };
  if (filters.workflow) params.workflow = filters.workflow;
  else if (filters.region) params.region = filters.region;
  const stop = watch(params, (kind, data) => {
    if (kind === "tasks_assigned") {
      // One event per lease, listing every task it handed out: decoded only when rows are loaded.
      if (!index.size) return;
      let ev;
      try {
        ev = JSON.parse(data);
      } catch {
        return;
      }
      for (const [id, k, one] of perTask(kind, ev)) update(id, k, one);
      return;
    }
    const id = rawId(data);
    if (id === null) return;
    if (kind === "task_submitted") {
      if (!filters.name || data.includes(JSON.stringify(filters.name))) {
        added += 1;
        fresh.textContent = `${fmtNum(added)} new — ${newest ? "show at the top" : "show at the end"}`;
        fresh.hidden = false;
      }
      return;
    }
    if (index.has(id)) update(id, kind, JSON.parse(data));
  }, { parse: false });

  function update(id, kind, ev) {
    const i = index.get(id);
    if (i === undefined) return;
    const task = list.items[i];
    if (task && applyEvent(task, kind, ev)) list.refresh(i);
  }

  await more();
  return () => {
    stop();
    list.destroy();
  };
}
