// Building DOM without HTML strings. Every piece of data becomes a text node or an attribute
// set through the DOM API, never markup: a task named "<img src=x onerror=alert(1)>" is text.

const SVG_NS = "http://www.w3.org/2000/svg";

// Attributes we set from data. Event handlers come only as functions (on: {...}); "style"
// and "href"/"src" strings are refused here (CSP blocks inline styles, and links go through
// link()).
const REFUSED = new Set(["style", "href", "src", "srcdoc", "action", "formaction"]);

function apply(el, attrs) {
  if (!attrs) return el;
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "on") for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
    else if (key === "text") el.textContent = String(value);
    else if (key === "css") for (const [p, v] of Object.entries(value)) el.style.setProperty(p, v);
    else if (key === "props") Object.assign(el, value);
    else if (key.startsWith("on") || REFUSED.has(key.toLowerCase())) throw new Error(`refused attribute ${key}`);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** h("div", {class: "x"}, "text", otherNode) */
export function h(tag, attrs, ...children) {
  return append(apply(document.createElement(tag), attrs), children);
}

export function svg(tag, attrs, ...children) {
  return append(apply(document.createElementNS(SVG_NS, tag), attrs), children);
}

/**
 * An in-app link: only "#/..." routes, each part URI-encoded; a trailing object is the query
 * (link(["tasks", {region: "eu"}]) -> "#/tasks?region=eu"). The one place that sets href.
 */
export function link(parts, attrs, ...children) {
  const a = h("a", attrs, ...children);
  a.setAttribute("href", route(...parts));
  return a;
}

export function route(...parts) {
  const last = parts[parts.length - 1];
  const query = last && typeof last === "object" ? new URLSearchParams(parts.pop()).toString() : "";
  return "#/" + parts.map((p) => encodeURIComponent(String(p))).join("/") + (query ? `?${query}` : "");
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export const STATES = ["pending", "ready", "assigned", "running", "succeeded", "failed", "dead", "cancelled", "skipped"];
export const TERMINAL = new Set(["succeeded", "dead", "cancelled", "skipped"]);

/**
 * One colour per task state, everywhere: badges and graph nodes (app.css's --s-* variables
 * hold the same values), the workflow legend, timelines and chart series.
 */
export const STATE_COLORS = {
  pending: "#9ca3af", ready: "#60a5fa", assigned: "#a78bfa", running: "#f59e0b", succeeded: "#22c55e",
  failed: "#f97316", dead: "#ef4444", cancelled: "#6b7280", skipped: "#d1d5db", evicted: "#e5e7eb",
};

export function stateColor(state) {
  return STATE_COLORS[state] || STATE_COLORS.pending;
}

export function badge(state) {
  const s = state || "evicted";
  return h("span", { class: `badge s-${s}`, dataset: { state: s } }, s);
}

export function progressBar(fraction, label) {
  const pct = Math.max(0, Math.min(1, Number(fraction) || 0)) * 100;
  const fill = h("div", { class: "bar-fill", css: { width: `${pct.toFixed(1)}%` } });
  return h("div", { class: "bar", role: "progressbar", "aria-valuenow": pct.toFixed(0), "aria-valuemin": 0, "aria-valuemax": 100 },
    fill, h("span", { class: "bar-label" }, label ?? `${pct.toFixed(0)}%`));
}

export function setProgress(bar, fraction, label) {
  const pct = Math.max(0, Math.min(1, Number(fraction) || 0)) * 100;
  bar.querySelector(".bar-fill").style.width = `${pct.toFixed(1)}%`;
  bar.setAttribute("aria-valuenow", pct.toFixed(0));
  bar.querySelector(".bar-label").textContent = label ?? `${pct.toFixed(0)}%`;
}

// --- formatting -----------------------------------------------------------------------------

export function fmtNum(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  return Number(n).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function fmtRate(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  return n >= 100 ? fmtNum(n, 0) : fmtNum(n, 1);
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  const s = Math.abs(seconds);
  if (s < 1) return `${(seconds * 1000).toFixed(0)} ms`;
  if (s < 60) return `${seconds.toFixed(s < 10 ? 2 : 1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

/** ISO 8601 in the browser's time zone, to the millisecond: 2026-12-07 12:30:05.123. */
export function fmtTime(epoch) {
  if (!epoch) return "–";
  const d = new Date(epoch * 1000);
  const two = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} `
    + `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

export function fmtAgo(epoch, now = Date.now() / 1000) {
  if (!epoch) return "never";
  const d = now - epoch;
  if (d < 0) return `in ${fmtDuration(-d)}`;
  return `${fmtDuration(d)} ago`;
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}

/** Submission time of a task, from its id (12 hex digits of epoch milliseconds first). */
export function idTime(id) {
  const ms = parseInt(String(id).replace(/^wf_/, "").slice(0, 12), 16);
  return Number.isFinite(ms) ? ms / 1000 : null;
}

export function debounce(fn, ms) {
  let timer = null;
  const run = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  run.cancel = () => clearTimeout(timer);
  return run;
}

/** Run fn at most once per ms (trailing call kept). */
export function throttle(fn, ms) {
  let last = 0;
  let timer = null;
  const run = () => {
    const now = performance.now();
    if (now - last >= ms) {
      last = now;
      fn();
    } else if (!timer) {
      timer = setTimeout(() => {
        timer = null;
        last = performance.now();
        fn();
      }, ms - (now - last));
    }
  };
  run.cancel = () => clearTimeout(timer);
  return run;
}

export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  if (!box) return;
  const el = h("div", { class: `toast ${kind}`, role: "status" }, message);
  box.append(el);
  setTimeout(() => el.remove(), kind === "error" ? 8000 : 3500);
}

/** Ask before doing something. Resolves true when confirmed. */
export function confirmDialog(title, body, confirmLabel = "Confirm", danger = false) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm", "data-role": "confirm" });
    const done = (ok) => {
      dialog.close();
      dialog.remove();
      resolve(ok);
    };
    dialog.append(
      h("h3", null, title),
      h("p", null, body),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary", on: { click: () => done(false) } }, "Cancel"),
        h("button", { type: "button", class: danger ? "danger" : "primary", "data-role": "confirm-ok", on: { click: () => done(true) } }, confirmLabel)),
    );
    dialog.addEventListener("cancel", (ev) => {
      ev.preventDefault();
      done(false);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

export function errorBox(err) {
  const detail = err && err.detail ? err.detail : String(err && err.message ? err.message : err);
  const title = err && err.title ? `${err.title} (${err.status})` : "Error";
  return h("div", { class: "error-box", role: "alert", "data-role": "error" }, h("strong", null, title), " ", detail);
}

export function section(title, ...children) {
  return h("section", { class: "panel" }, h("h2", null, title), ...children);
}

export function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
}
