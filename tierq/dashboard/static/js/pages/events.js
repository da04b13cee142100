// Events: a live tail of the lifecycle stream. On open (and on each change of filters) the
// stream's last REPLAY events are shown at once (the feed's `last`), then the live ones.
// Kinds, task, workflow and region filters go to the API (filtered on the server); the text
// filter applies here. The last KEEP events are kept, newest first, in a virtual list;
// click one for its full JSON.

import { AUTOSCALE_KINDS, EVENT_KINDS, watch } from "../api.js";
import { clear, fmtNum, fmtTime, h, json, link, section } from "../dom.js";
import { virtualList } from "../vlist.js";

const KEEP = 5000;
//: Events at the end of the stream replayed on open (the filters then pick among them).
const REPLAY = 2000;
// The master's events and the autoscalers' decisions share the feed.
const KINDS = [...EVENT_KINDS, ...AUTOSCALE_KINDS];

function summary(kind, ev) {
  switch (kind) {
    case "task_submitted": return `${ev.spec?.name ?? ""} → ${ev.state}${ev.workflow_id ? " in " + ev.workflow_id : ""}`;
    case "task_assigned": return `attempt ${ev.attempt} → region ${ev.region}`;
    case "tasks_assigned": return assignedSummary(ev);
    case "task_started": return `attempt ${ev.attempt} on ${ev.worker}`;
    case "task_progress": return `${Math.round((ev.fraction || 0) * 100)}%${ev.message ? " · " + ev.message : ""}`;
    case "task_succeeded": return `attempt ${ev.attempt}${ev.worker ? " on " + ev.worker : ""}`;
    case "task_failed": return `attempt ${ev.attempt}: ${ev.error?.type ?? ""}: ${ev.error?.message ?? ""}${ev.retry_at ? " (retry scheduled)" : ""}`;
    case "task_dead": case "task_cancelled": case "task_skipped": return ev.reason || "";
    case "task_reprioritized": return `priority ${ev.old} → ${ev.new}`;
    case "task_retried": return `attempt ${ev.attempt} → ${ev.state}`;
    case "workflow_submitted": return `${ev.name} · ${Object.keys(ev.nodes || {}).length} tasks`;
    case "workflow_finished": return ev.state;
    case "tasks_evicted": return `${(ev.ids || []).length} tasks evicted`;
    case "region_registered": return `region ${ev.info?.name ?? ""}`;
    case "region_heartbeat": case "region_expired": return `region ${ev.name}`;
    case "breaker_opened": case "breaker_half_open": case "breaker_closed": return `${ev.scope} ${ev.region ? ev.region + "/" : ""}${ev.name}`;
    case "settings_changed": return "new settings";
    case "autoscale_decision": return `region ${ev.region}: ${ev.previous} → ${ev.desired} workers · ${ev.reason}`;
    default: return "";
  }
}

/** One lease's tasks_assigned: "3 tasks → region eu · attempt 1" (attempts as a range). */
function assignedSummary(ev) {
  const n = Array.isArray(ev.ids) ? ev.ids.length : 0;
  const attempts = (Array.isArray(ev.attempts) ? ev.attempts : []).filter(Number.isFinite);
  let tail = "";
  if (attempts.length) {
    const lo = Math.min(...attempts.slice(0, 10_000));
    const hi = Math.max(...attempts.slice(0, 10_000));
    tail = lo === hi ? ` · attempt ${lo}` : ` · attempts ${lo}–${hi}`;
  }
  return `${fmtNum(n)} task${n === 1 ? "" : "s"} → region ${ev.region ?? ""}${tail}`;
}

/** The Subject cell: the task or workflow the event is about, or its region/breaker name. */
function subject(e) {
  const ev = e.ev;
  if (e.kind === "tasks_assigned" && Array.isArray(ev.ids)) {
    const n = ev.ids.length;
    if (n === 1 && typeof ev.ids[0] === "string") return link(["tasks", ev.ids[0]], { class: "mono small" }, ev.ids[0]);
    return h("span", { class: "mono small", "data-role": "task-count" }, `${fmtNum(n)} tasks`);
  }
  if (ev.id && e.kind.startsWith("task")) return link(["tasks", ev.id], { class: "mono small" }, ev.id);
  if (ev.id && e.kind.startsWith("workflow")) return link(["workflows", ev.id], { class: "mono small" }, ev.id);
  return h("span", { class: "mono small" }, ev.name || ev.info?.name || "");
}

export async function mount(view, r) {
  const p = r.params;
  const chosen = new Set((p.get("kinds") || "").split(",").filter((k) => KINDS.includes(k)));
  const quiet = new Set(["region_heartbeat", "task_progress"]);
  const kindBoxes = KINDS.map((k) => {
    const box = h("input", { type: "checkbox", value: k, checked: chosen.size ? chosen.has(k) : !quiet.has(k), "data-kind": k });
    return h("label", { class: "small" }, box, " ", k);
  });
  const fields = {
    task: h("input", { name: "task", placeholder: "task id", value: p.get("task") || "", size: 22 }),
    workflow: h("input", { name: "workflow", placeholder: "workflow id", value: p.get("workflow") || "", size: 24 }),
    region: h("input", { name: "region", placeholder: "region", value: p.get("region") || "", size: 10 }),
    text: h("input", { name: "text", placeholder: "contains…", value: p.get("text") || "", size: 16, "data-role": "text-filter" }),
  };
  const form = h("form", { class: "toolbar", "data-role": "event-filters" },
    h("label", null, "Task", fields.task), h("label", null, "Workflow", fields.workflow),
    h("label", null, "Region", fields.region), h("label", null, "Text", fields.text),
    h("button", { type: "submit", class: "primary" }, "Apply"));
  const pause = h("button", { type: "button", "data-action": "pause" }, "Pause");
  const clearBtn = h("button", { type: "button", class: "secondary" }, "Clear");
  const rate = h("span", { class: "muted small", "data-role": "event-rate" });
  const box = h("div", { class: "vlist", "data-role": "event-list" });
  const detail = h("div", { class: "panel event-detail", hidden: true });
  view.append(
    h("h1", null, "Events ", rate),
    form,
    h("details", { class: "panel" }, h("summary", null, "Kinds"), h("div", { class: "legend" }, kindBoxes)),
    h("div", { class: "actions" }, pause, clearBtn),
    box, detail,
  );

  const head = h("div", { class: "vhead events-grid" }, ["Seq", "Time", "Kind", "Subject", "Summary"].map((c) => h("span", null, c)));
  const list = virtualList(box, {
    header: head,
    renderRow: (e) => h("div", { class: "events-grid", "data-kind": e.kind, on: { click: () => show(e) } },
      h("span", { class: "mono small" }, e.seq ?? ""),
      h("span", { class: "small", "data-role": "event-time" }, fmtTime(e.ev.at).split(" ")[1] || ""),
      h("span", { class: "mono small" }, e.kind),
      subject(e),
      h("span", { class: "small", "data-role": "event-summary" }, summary(e.kind, e.ev))),
  });

  function show(e) {
    clear(detail).append(
      h("div", { class: "actions" }, h("strong", null, e.kind), h("span", { class: "muted small" }, `#${e.seq ?? "–"} · ${fmtTime(e.ev.at)}`),
        h("button", { type: "button", class: "small", on: { click: () => { detail.hidden = true; } } }, "Close")),
      h("pre", null, json(e.ev)));
    detail.hidden = false;
  }

  let paused = false;
  let buffer = [];
  let seen = 0;
  let stop = null;
  const textFilter = () => fields.text.value.trim().toLowerCase();

  function start() {
    if (stop) {
      stop();
      stop = null;
    }
    const kinds = kindBoxes.map((l) => l.querySelector("input")).filter((b) => b.checked).map((b) => b.value);
    const params = { kinds: kinds.length === KINDS.length ? [] : kinds, last: REPLAY };
    for (const k of ["task", "workflow", "region"]) if (fields[k].value.trim()) params[k] = fields[k].value.trim();
    // The new watch replays the end of the stream: start from an empty list.
    buffer = [];
    list.set([]);
    if (!kinds.length) return;
    stop = watch(params, (kind, data, seq) => {
      seen += 1;
      const t = textFilter();
      if (t && !data.toLowerCase().includes(t)) return;
      let ev;
      try {
        ev = JSON.parse(data);
      } catch {
        return;
      }
      buffer.push({ kind, ev, seq });
    }, { parse: false });
  }

  // Batch rendering: events arrive faster than frames.
  let lastSeen = 0;
  let lastT = performance.now();
  const flush = setInterval(() => {
    const now = performance.now();
    if (now - lastT >= 1000) {
      rate.textContent = `${fmtNum(((seen - lastSeen) * 1000) / (now - lastT), 1)} events/s · ${fmtNum(list.items.length)} shown${paused ? " · paused" : ""}`;
      lastSeen = seen;
      lastT = now;
    }
    if (paused || !buffer.length) return;
    const fresh = buffer.reverse();
    buffer = [];
    const items = fresh.concat(list.items).slice(0, KEEP);
    list.set(items);
  }, 250);

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    start();
  });
  for (const l of kindBoxes) l.querySelector("input").addEventListener("change", () => start());
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
    if (paused) buffer = buffer.slice(-KEEP);
  });
  clearBtn.addEventListener("click", () => {
    buffer = [];
    list.set([]);
  });
  start();
  return () => {
    if (stop) stop();
    clearInterval(flush);
    list.destroy();
  };
}
