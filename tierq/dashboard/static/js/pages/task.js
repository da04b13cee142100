// One task: arguments (a workflow child's {"$result": parent} shown as the parent's result,
// marked as such), result or error with traceback, attempts on a timeline, progress, and
// the actions cancel, retry and change priority (confirmed first; the API's refusal shown).

import { enc, get, send, watch } from "../api.js";
import {
  badge, clear, confirmDialog, errorBox, fmtDuration, fmtTime, h, json, kv, link,
  progressBar, section, setProgress, throttle, toast,
} from "../dom.js";
import { applyEvent, assignedOne } from "../live.js";
import { drawTimeline } from "../timeline.js";

const ENDED = new Set(["succeeded", "dead", "cancelled", "skipped"]);
const RETRYABLE = new Set(["dead", "cancelled", "skipped"]);

/** Frames of tierq's own code (the worker calling the task): hidden until asked for. */
const OWN_FRAME = /^  File "[^"]*[\\/]tierq[\\/][^"]*", line \d+/;

/** The traceback without tierq's own frames, with a button to show them all. */
function tracebackView(text) {
  const lines = text.split("\n");
  const kept = [];
  let hidden = 0;
  for (let i = 0; i < lines.length; i += 1) {
    if (OWN_FRAME.test(lines[i])) {
      hidden += 1;
      // Its source line follows, indented deeper, unless the source was not available.
      if (i + 1 < lines.length && lines[i + 1].startsWith("    ")) i += 1;
      while (i + 1 < lines.length && /^\s+[~^]+\s*$/.test(lines[i + 1])) i += 1;
      continue;
    }
    kept.push(lines[i]);
  }
  const pre = h("pre", { "data-role": "traceback" }, hidden ? kept.join("\n") : text);
  if (!hidden) return pre;
  const toggle = h("button", { type: "button", class: "small", "data-action": "all-frames", on: {
    click: () => {
      const all = toggle.dataset.all !== "true";
      toggle.dataset.all = String(all);
      pre.textContent = all ? text : kept.join("\n");
      toggle.textContent = all ? "Hide tierq's frames" : `Show tierq's frames (${hidden})`;
    },
  } }, `Show tierq's frames (${hidden})`);
  return h("div", null, toggle, pre);
}

const REF = "$result";
//: Pages of a workflow's nodes read at most to find the parents named in the arguments.
const MAX_WORKFLOW_PAGES = 20;
//: Parents read at most (a fan-in of thousands shows the rest as references).
const MAX_PARENTS = 100;

function isRef(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 1 && typeof v[REF] === "string";
}

/** Every parent named by a {"$result": ref} in `value` (a workflow key or a task id). */
function refsIn(value, out = new Set()) {
  if (isRef(value)) out.add(value[REF]);
  else if (value !== null && typeof value === "object") for (const v of Object.values(value)) refsIn(v, out);
  return out;
}

/**
 * The parents the arguments name: ref -> {id, task} (task null when the API no longer has
 * it). A ref is a parent's task id or its key in the workflow (looked up in its nodes).
 */
async function parentsOf(task) {
  const refs = refsIn([task.spec.args || [], task.spec.kwargs || {}]);
  const ids = new Map();
  for (const ref of refs) if ((task.parents || []).includes(ref)) ids.set(ref, ref);
  if (ids.size < refs.size && task.workflow_id) {
    let cursor;
    for (let page = 0; page < MAX_WORKFLOW_PAGES && ids.size < refs.size; page += 1) {
      const wf = await get(`/v1/workflows/${enc(task.workflow_id)}`, { cursor });
      for (const n of wf.nodes) if (refs.has(n.key) && !ids.has(n.key)) ids.set(n.key, n.task_id);
      cursor = wf.next_cursor;
      if (!cursor) break;
    }
  }
  const parents = new Map();
  await Promise.all([...ids].slice(0, MAX_PARENTS).map(async ([ref, pid]) => {
    let parent = null;
    try {
      parent = await get(`/v1/tasks/${enc(pid)}`);
    } catch {
      // evicted or not readable: shown as the reference
    }
    parents.set(ref, { id: pid, task: parent });
  }));
  return parents;
}

/**
 * `value` as indented JSON in DOM nodes, each {"$result": ref} replaced by the parent's result
 * (what the task receives) and marked "result of parent ref", or kept with why it is not.
 */
function resolvedJson(value, parents, indent = "") {
  if (isRef(value)) {
    const ref = value[REF];
    const p = parents.get(ref);
    const parentLink = p ? link(["tasks", p.id], { class: "mono" }, ref) : h("span", { class: "mono" }, ref);
    if (p && p.task && p.task.state === "succeeded") {
      const text = JSON.stringify(p.task.result ?? null, null, 2).replace(/\n/g, `\n${indent}`);
      return [h("span", { class: "from-parent", "data-parent": ref, title: `the result of parent ${ref} (${p.id})` }, text),
        h("span", { class: "parent-note" }, "  ← result of parent ", parentLink)];
    }
    const why = !p ? "parent not read" : p.task ? `parent ${p.task.state}, no result yet` : "parent's result not known";
    return [JSON.stringify(value), h("span", { class: "parent-note", "data-parent": ref }, `  ← ${why}: `, parentLink)];
  }
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return ["[\n", value.map((v, i) => [inner, resolvedJson(v, parents, inner), i < value.length - 1 ? ",\n" : "\n"]), `${indent}]`];
  }
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value);
    if (!entries.length) return "{}";
    return ["{\n", entries.map(([k, v], i) => [inner, JSON.stringify(k), ": ", resolvedJson(v, parents, inner), i < entries.length - 1 ? ",\n" : "\n"]), `${indent}}`];
  }
  return JSON.stringify(value);
}

function attemptRows(task) {
  const rows = (task.history || []).map((a) => ({
    label: `attempt ${a.attempt ?? 1}${a.worker ? " · " + a.worker : ""}`,
    wait: a.assigned_at ? [a.assigned_at, a.started_at ?? a.ended_at ?? null] : null,
    run: a.started_at ? [a.started_at, a.ended_at ?? null] : null,
    state: a.outcome || (a.ended_at ? "failed" : "running"),
    title: `${a.outcome || "running"}${a.error ? ": " + a.error.message : ""}`,
  }));
  const ts = task.timestamps || {};
  const known = new Set((task.history || []).map((a) => a.attempt ?? 1));
  // The task document leaves out defaults: no "attempt" means the first one.
  const current = task.attempt ?? 1;
  // The attempt in flight is in the history only once it ends.
  if (!known.has(current) && (task.state === "assigned" || task.state === "running")) {
    rows.push({
      label: `attempt ${current}${task.worker ? " · " + task.worker : ""}`,
      wait: ts.assigned ? [ts.assigned, task.state === "running" ? ts.running : null] : null,
      run: task.state === "running" && ts.running ? [ts.running, null] : null,
      state: task.state,
      title: task.state,
    });
  }
  return rows;
}

export async function mount(view, route) {
  const id = route.id;
  const path = `/v1/tasks/${enc(id)}`;
  let task;
  try {
    task = await get(path);
  } catch (err) {
    view.append(h("h1", null, "Task ", h("span", { class: "mono" }, id)), errorBox(err), link(["tasks"], null, "← all tasks"));
    return null;
  }

  // The parents the arguments name, with their results (read again while any has none yet).
  let parents = new Map();
  const unresolved = () => [...parents.values()].some((p) => p.task && p.task.state !== "succeeded");
  async function loadParents() {
    try {
      parents = await parentsOf(task);
    } catch {
      parents = new Map();
    }
  }
  await loadParents();

  const title = h("span", { "data-role": "task-title" });
  const state = h("span", { "data-role": "task-state" });
  const bar = progressBar(0);
  bar.dataset.role = "task-progress";
  const barNote = h("div", { class: "muted small", "data-role": "progress-message" });
  const details = h("div");
  const payload = h("div");
  const outcome = h("div");
  const attempts = h("div", { class: "timeline", "data-role": "attempts" });
  const attemptsTable = h("div");
  const actionError = h("div", { "data-role": "action-error" });
  const priorityInput = h("input", { type: "number", min: -1000, max: 1000, step: 1, "data-role": "priority-input", size: 6 });

  async function act(label, body, run, danger = false) {
    if (!(await confirmDialog(label, body, label, danger))) return;
    clear(actionError);
    try {
      await run();
      toast(`${label}: done`);
      await refresh();
    } catch (err) {
      clear(actionError).append(errorBox(err));
    }
  }

  const cancelButton = h("button", { type: "button", class: "danger", "data-action": "cancel", on: {
    click: () => act("Cancel task", `Cancel ${task.spec.name} (${id})? Running attempts are stopped and dependents are cancelled.`,
      () => send("POST", `${path}/cancel`), true),
  } }, "Cancel");
  const retryButton = h("button", { type: "button", "data-action": "retry", on: {
    click: () => act("Retry task", `Run ${task.spec.name} (${id}) again with a fresh attempt budget?`, () => send("POST", `${path}/retry`)),
  } }, "Retry");
  const actions = h("div", { class: "actions" },
    cancelButton,
    retryButton,
    h("span", { class: "muted" }, "Priority"),
    priorityInput,
    h("button", { type: "button", "data-action": "priority", on: {
      click: () => {
        const raw = priorityInput.value.trim();
        const value = raw === "" || !/^-?\d+$/.test(raw) ? raw : Number(raw);
        act("Change priority", `Set the priority of ${task.spec.name} (${id}) to ${raw}?`,
          () => send("PATCH", path, { priority: value }));
      },
    } }, "Set priority"),
  );

  view.append(
    h("h1", null, title, state, h("span", { class: "mono small muted" }, id)),
    section("Actions", actions, actionError),
    section("Progress", bar, barNote),
    h("div", { class: "grid cols-2" }, section("Details", details), h("div", null, section("Arguments", payload), section("Outcome", outcome))),
    section("Attempts", attempts, attemptsTable),
  );

  function render() {
    title.textContent = task.spec.name;
    clear(state).append(badge(task.state));
    // Offer only what can apply: the API would refuse the rest.
    cancelButton.disabled = ENDED.has(task.state);
    cancelButton.title = cancelButton.disabled ? `already ${task.state}` : "";
    retryButton.disabled = !RETRYABLE.has(task.state);
    retryButton.title = retryButton.disabled ? "only dead, cancelled or skipped tasks can be retried" : "";
    const fraction = task.state === "succeeded" ? 1 : task.progress || 0;
    setProgress(bar, fraction);
    barNote.textContent = task.progress_message || "";
    if (document.activeElement !== priorityInput) priorityInput.value = String(task.priority ?? task.spec.priority ?? 0);
    const ts = task.timestamps || {};
    const spec = task.spec;
    clear(details).append(kv([
      ["Workflow", task.workflow_id ? link(["workflows", task.workflow_id], { class: "mono" }, task.workflow_id) : "–"],
      ["Queue", spec.queue || "default"],
      ["Priority", `${task.priority ?? spec.priority ?? 0}${task.boost ? ` (+${task.boost} boost)` : ""}`],
      ["Attempt", `${task.attempt || 1} of ${(spec.retry && spec.retry.max_attempts) || 3}`],
      ["Region", task.region || "–"],
      ["Worker", task.worker || "–"],
      ["Submitted", fmtTime(task.submitted_at)],
      ...Object.entries(ts).filter(([k]) => k !== "submitted").sort((a, b) => a[1] - b[1]).map(([k, v]) => [k[0].toUpperCase() + k.slice(1), fmtTime(v)]),
      spec.timeout ? ["Timeout", fmtDuration(spec.timeout)] : null,
      spec.deadline ? ["Deadline", fmtTime(spec.deadline)] : null,
      spec.run_at ? ["Run at", fmtTime(spec.run_at)] : null,
      spec.labels && spec.labels.length ? ["Labels", spec.labels.join(", ")] : null,
      spec.resource ? ["Resource", spec.resource] : null,
      task.reason ? ["Reason", task.reason] : null,
      task.parents && task.parents.length ? ["Parents", h("span", null, task.parents.map((p) => [link(["tasks", p], { class: "mono" }, p), " "]))] : null,
    ]));
    const args = spec.args || [];
    const kwargs = spec.kwargs || {};
    clear(payload).append(...[
      h("div", { class: "muted small" }, "args"), h("pre", { "data-role": "args" }, resolvedJson(args, parents)),
      h("div", { class: "muted small" }, "kwargs"), h("pre", { "data-role": "kwargs" }, resolvedJson(kwargs, parents)),
      refsIn([args, kwargs]).size ? h("details", { "data-role": "args-submitted" }, h("summary", { class: "muted small" }, "as submitted"),
        h("pre", null, json({ args, kwargs }))) : null,
    ].filter(Boolean));
    clear(outcome);
    if (task.error) {
      outcome.append(...[
        h("p", null, h("strong", { "data-role": "error-type" }, task.error.type), ": ", h("span", { "data-role": "error-message" }, task.error.message)),
        task.error.traceback ? tracebackView(task.error.traceback) : null,
      ].filter(Boolean));
    }
    if (task.state === "succeeded" || task.result !== undefined) {
      outcome.append(h("div", { class: "muted small" }, "result"), h("pre", { "data-role": "result" }, json(task.result ?? null)));
    }
    if (!outcome.childNodes.length) outcome.append(h("p", { class: "muted" }, "No result yet."));
    const rows = attemptRows(task);
    if (rows.length) drawTimeline(attempts, rows);
    else clear(attempts).append(h("p", { class: "muted" }, "Not started yet."));
    // append(null) would print "null": append the table only when there is one.
    clear(attemptsTable).append(...[
      (task.history || []).length ? h("table", { class: "data" },
        h("thead", null, h("tr", null, ["Attempt", "Region", "Worker", "Assigned", "Started", "Ended", "Outcome", "Error"].map((c) => h("th", null, c)))),
        h("tbody", null, task.history.map((a) => h("tr", null,
          h("td", null, String(a.attempt ?? 1)), h("td", null, a.region || "–"), h("td", { class: "mono small" }, a.worker || "–"),
          h("td", null, fmtTime(a.assigned_at)), h("td", null, fmtTime(a.started_at)), h("td", null, fmtTime(a.ended_at)),
          h("td", null, a.outcome || "–"), h("td", null, a.error ? `${a.error.type}: ${a.error.message}` : ""))))) : null,
    ].filter(Boolean));
  }

  async function refresh() {
    try {
      task = await get(path);
      if (unresolved()) await loadParents();
      render();
    } catch (err) {
      clear(actionError).append(errorBox(err));
    }
  }

  const refetch = throttle(refresh, 500);
  const stop = watch({ task: id }, (kind, ev) => {
    if (kind === "tasks_assigned") {
      // A lease's one event for all the tasks it handed out: this task's part of it.
      ev = assignedOne(ev, id);
      if (!ev) return;
      kind = "task_assigned";
    }
    if (kind === "task_progress") {
      applyEvent(task, kind, ev);
      setProgress(bar, task.progress);
      barNote.textContent = task.progress_message || "";
      return;
    }
    applyEvent(task, kind, ev);
    render();
    refetch();
  }, { onOpen: refetch });
  render();
  return () => {
    stop();
    refetch.cancel();
  };
}
