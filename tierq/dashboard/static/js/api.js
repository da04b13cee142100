// Talking to the tierq REST API: JSON in and out, problem documents as ApiError, the CSRF
// token on every state-changing request, and the live event feed (Server-Sent Events).

export const EVENT_KINDS = [
  "breaker_closed", "breaker_half_open", "breaker_opened", "intake_applied", "region_expired",
  "region_heartbeat", "region_registered", "schedule_created", "schedule_deleted",
  "schedule_fired", "schedule_paused", "schedule_resumed", "schedule_updated",
  "settings_changed", "task_assigned", "task_cancelled",
  "task_dead", "task_deadline_boosted", "task_duplicate_report", "task_failed", "task_progress",
  "task_ready", "task_refused", "task_reprioritized", "task_retried", "task_skipped",
  "task_started", "task_submitted", "task_succeeded", "tasks_assigned", "tasks_evicted",
  "workflow_finished", "workflow_submitted",
];

/** Events of the autoscalers (not of the master's log), on the same feed. */
export const AUTOSCALE_KINDS = ["autoscale_decision"];

/** A refusal from the API: the RFC 9457 problem document's members. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.title = problem.title || `HTTP ${status}`;
    this.detail = problem.detail || this.message;
    this.code = problem.code || null;
    this.field = problem.field || null;
    this.ids = problem.ids || [];
  }
}

export const session = { open: true, authenticated: true, name: null, role: null, csrf_token: null };

export async function loadSession() {
  const r = await fetch("/v1/session", { credentials: "same-origin", cache: "no-store" });
  // 404: an API without the dashboard's routes installed; only an open API serves pages then.
  if (r.ok) Object.assign(session, await r.json());
  return session;
}

function toLogin() {
  if (!location.pathname.endsWith("login.html")) location.assign("/login.html");
}

async function parse(r) {
  if (r.status === 204) return null;
  const type = r.headers.get("content-type") || "";
  const body = type.includes("json") ? await r.json() : await r.text();
  if (r.ok) return body;
  if (r.status === 401 && !session.open) toLogin();
  throw new ApiError(r.status, typeof body === "object" && body ? body : { detail: String(body) });
}

function query(params) {
  if (!params) return "";
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

export async function get(path, params, signal) {
  let r;
  try {
    r = await fetch(path + query(params), { credentials: "same-origin", headers: { accept: "application/json" }, signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, { title: "API unreachable", detail: String(err.message || err) });
  }
  return parse(r);
}

export async function send(method, path, body, extraHeaders) {
  const headers = { accept: "application/json", ...(extraHeaders || {}) };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (session.csrf_token) headers["x-csrf-token"] = session.csrf_token;
  let r;
  try {
    r = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : (typeof body === "string" ? body : JSON.stringify(body)),
    });
  } catch (err) {
    throw new ApiError(0, { title: "API unreachable", detail: String(err.message || err) });
  }
  return parse(r);
}

export const enc = encodeURIComponent;

// --- live events ----------------------------------------------------------------------------

const listeners = new Set();
let openStreams = 0;
let watchers = 0;

/** Subscribe to the state of the event streams ("live" indicator): fn(up, watching). */
export function onLiveState(fn) {
  listeners.add(fn);
  fn(openStreams > 0, watchers > 0);
  return () => listeners.delete(fn);
}

function changed(delta, watching = 0) {
  openStreams += delta;
  watchers += watching;
  for (const fn of listeners) fn(openStreams > 0, watchers > 0);
}

/**
 * Watch the lifecycle feed. params: kinds (array), task, workflow, region, after, last (the
 * stream's last N events first).
 * onEvent(kind, data, sequence) gets raw JSON text unless parse is true; onOpen() runs each
 * time the stream (re)connects. EventSource reconnects on its own and resumes after the
 * last sequence it saw (Last-Event-ID).
 */
export function watch(params, onEvent, { parse: parseData = true, onError, onOpen } = {}) {
  const p = { ...params };
  if (Array.isArray(p.kinds)) p.kinds = p.kinds.join(",");
  const source = new EventSource("/v1/events" + query(p), { withCredentials: true });
  changed(0, 1);
  const kinds = params.kinds && params.kinds.length ? params.kinds : [...EVENT_KINDS, ...AUTOSCALE_KINDS];
  let up = false;
  const setUp = (v) => {
    if (v !== up) {
      up = v;
      changed(v ? 1 : -1);
    }
  };
  // The server subscribes before it answers, so anything read after "open" misses nothing:
  // pages re-read their snapshot here (events before it and after the first read are
  // otherwise lost between the two).
  source.addEventListener("open", () => {
    setUp(true);
    if (onOpen) onOpen();
  });
  source.addEventListener("error", () => {
    setUp(false);
    if (onError) onError(source.readyState);
  });
  for (const kind of kinds) {
    source.addEventListener(kind, (ev) => {
      const seq = ev.lastEventId ? Number(ev.lastEventId) : null;
      if (!parseData) return onEvent(kind, ev.data, seq);
      let data;
      try {
        data = JSON.parse(ev.data);
      } catch {
        return;
      }
      onEvent(kind, data, seq);
    });
  }
  return () => {
    source.close();
    setUp(false);
    changed(0, -1);
  };
}
