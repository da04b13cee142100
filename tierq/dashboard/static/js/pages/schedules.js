// Schedules: when each fires next, its last runs and their states; pause (with a note),
// resume, trigger now, and edit the spec (JSON, validated by the master).

import { enc, get, send } from "../api.js";
import { badge, clear, confirmDialog, errorBox, fmtTime, h, link, toast } from "../dom.js";

const MAX_PAGES = 5; // of 200 schedules each

function when(spec) {
  if (spec.cron) return `${spec.cron} (${spec.timezone || "UTC"})`;
  return `every ${spec.every} s${spec.offset ? ` +${spec.offset}` : ""}`;
}

function target(spec) {
  if (spec.task) return spec.task.name;
  return spec.workflow ? `workflow ${spec.workflow.name || "workflow"}` : "–";
}

function runCell(run) {
  const label = run.outcome === "started" ? run.state || "evicted" : run.outcome;
  const mark = run.outcome === "started" && run.state ? badge(run.state) : h("span", { class: "pill warn" }, label);
  mark.title = `${run.kind} fire for ${fmtTime(run.fire_time)}${run.reason ? `: ${run.reason}` : ""}`;
  return run.task_id ? link(["tasks", run.task_id], null, mark) : mark;
}

export async function mount(view) {
  const error = h("div");
  const body = h("div", { "data-role": "schedules" });
  const editor = h("div");
  view.append(h("h1", null, "Schedules"), error, editor, body);
  let alive = true;
  let timer = null;

  async function act(what, fn) {
    try {
      await fn();
      toast(what);
      clear(error);
      await refresh();
    } catch (err) {
      clear(error).append(errorBox(err));
    }
  }

  function pause(s) {
    const note = h("input", { type: "text", placeholder: "why (optional)", "data-role": "pause-note" });
    clear(editor).append(h("section", { class: "panel" },
      h("h2", null, `Pause ${s.id}`), note,
      h("div", { class: "actions" },
        h("button", { type: "button", "data-action": "confirm-pause", on: { click: () => {
          clear(editor);
          act(`Paused ${s.id}`, () => send("POST", `/v1/schedules/${enc(s.id)}/pause`, { note: note.value || null }));
        } } }, "Pause"),
        h("button", { type: "button", class: "secondary", on: { click: () => clear(editor) } }, "Cancel"))));
    note.focus();
  }

  function edit(s) {
    const text = h("textarea", { rows: 14, class: "mono", "data-role": "spec" });
    text.value = JSON.stringify(s.spec, null, 2);
    clear(editor).append(h("section", { class: "panel" },
      h("h2", null, `Edit ${s.id}`),
      h("p", { class: "muted small" }, "cron or every, timezone, offset, jitter, start_at, end_at, task or workflow, fire_time_arg, overlap, catchup_window, catchup."),
      text,
      h("div", { class: "actions" },
        h("button", { type: "button", "data-action": "save-spec", on: { click: () => {
          let spec;
          try {
            spec = JSON.parse(text.value);
          } catch (err) {
            clear(error).append(errorBox(err));
            return;
          }
          act(`Saved ${s.id}`, async () => {
            // Only if nobody changed it since this page read it (else 412, shown; reload).
            await send("PUT", `/v1/schedules/${enc(s.id)}`, spec, { "if-match": `"${s.updated_at}"` });
            clear(editor);
          });
        } } }, "Save"),
        h("button", { type: "button", class: "secondary", on: { click: () => clear(editor) } }, "Cancel"))));
  }

  async function trigger(s) {
    if (!(await confirmDialog("Trigger", `Fire ${s.id} now? Its overlap policy (${s.spec.overlap || "skip"}) applies.`, "Trigger"))) return;
    act(`Triggered ${s.id}`, () => send("POST", `/v1/schedules/${enc(s.id)}/trigger`));
  }

  async function refresh() {
    const reply = { schedules: [], more: false };
    try {
      let cursor = null;
      for (let pages = 0; pages < MAX_PAGES; pages++) {
        const page = await get("/v1/schedules", cursor ? { cursor } : undefined);
        reply.schedules.push(...page.schedules);
        cursor = page.next_cursor;
        if (!cursor) break;
      }
      reply.more = Boolean(cursor);
    } catch (err) {
      clear(error).append(errorBox(err));
      return;
    }
    clear(body);
    if (!reply.schedules.length) {
      body.append(h("p", { class: "muted" }, "No schedule. Declare one in code (@app.task(schedule=...)), or use `tierq schedules create`."));
      return;
    }
    if (reply.more) body.append(h("p", { class: "muted small" }, `The first ${reply.schedules.length} schedules, by id.`));
    body.append(h("table", { class: "data schedules" },
      h("thead", null, h("tr", null,
        ["Schedule", "When", "Target", "Next fire", "Last runs", "State", ""].map((c) => h("th", null, c)))),
      h("tbody", null, reply.schedules.map((s) => h("tr", { "data-schedule": s.id },
        h("td", { class: "mono" }, s.id, s.source === "code" ? h("span", { class: "pill", title: "declared in code" }, "code") : ""),
        h("td", { class: "mono small" }, when(s.spec)),
        h("td", { class: "mono small" }, target(s.spec)),
        h("td", { "data-role": "next-fire" }, s.paused || !s.next_fire ? "–" : nextFire(s)),
        h("td", { class: "runs" }, s.recent.slice(-8).map(runCell)),
        h("td", null, s.paused
          ? h("span", { class: "pill warn", "data-role": "paused", title: s.note || "" }, s.note ? `paused: ${s.note}` : "paused")
          : h("span", { class: "pill ok" }, "active"),
          (s.warnings || []).length
            ? h("span", { class: "pill warn", "data-role": "unserved", title: s.warnings.join("\n") }, "no worker")
            : ""),
        h("td", { class: "actions" },
          s.paused
            ? h("button", { type: "button", class: "small", "data-action": "resume", on: { click: () => act(`Resumed ${s.id}`, () => send("POST", `/v1/schedules/${enc(s.id)}/resume`)) } }, "Resume")
            : h("button", { type: "button", class: "small", "data-action": "pause", on: { click: () => pause(s) } }, "Pause"),
          h("button", { type: "button", class: "small", "data-action": "trigger", on: { click: () => trigger(s) } }, "Trigger"),
          h("button", { type: "button", class: "small secondary", "data-action": "edit", on: { click: () => edit(s) } }, "Edit"))))),
    ));
    clear(error);
  }

  const loop = async () => {
    if (!alive) return;
    await refresh();
    if (alive) timer = setTimeout(loop, 3000);
  };
  await loop();
  return () => {
    alive = false;
    clearTimeout(timer);
  };
}

// A cron schedule's next fire in its own zone, with the zone's abbreviation, so the two
// passes of an autumn repeated hour read apart (01:30 EDT, then 01:30 EST).
function nextFire(s) {
  if (!s.spec.cron) return fmtTime(s.next_fire);
  try {
    const parts = Object.fromEntries(new Intl.DateTimeFormat("en-US", {
      timeZone: s.spec.timezone || "UTC", hourCycle: "h23", timeZoneName: "short",
      year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
    }).formatToParts(new Date(s.next_fire * 1000)).map((p) => [p.type, p.value]));
    return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ${parts.timeZoneName}`;
  } catch {
    return fmtTime(s.next_fire);
  }
}
