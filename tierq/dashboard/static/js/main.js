// The dashboard shell: session check, hash routing to pages, the live indicator.

import { loadSession, onLiveState, send, session } from "./api.js";
import { clear, errorBox } from "./dom.js";

const PAGES = {
  overview: () => import("./pages/overview.js"),
  tasks: () => import("./pages/tasks.js"),
  task: () => import("./pages/task.js"),
  workflows: () => import("./pages/workflows.js"),
  workflow: () => import("./pages/workflow.js"),
  regions: () => import("./pages/regions.js"),
  schedules: () => import("./pages/schedules.js"),
  settings: () => import("./pages/settings.js"),
  events: () => import("./pages/events.js"),
};

const view = document.getElementById("view");
let cleanup = null;
let generation = 0;

/** "#/tasks/abc?state=running" -> {page: "task", id: "abc", params: URLSearchParams} */
export function parseRoute(hash) {
  const raw = (hash || "").replace(/^#\/?/, "");
  const [path, q] = raw.split("?", 2);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(q || "");
  const [first, id] = parts;
  if (!first) return { page: "overview", nav: "overview", params };
  if (first === "tasks" && id) return { page: "task", nav: "tasks", id, params };
  if (first === "workflows" && id) return { page: "workflow", nav: "workflows", id, params };
  if (PAGES[first]) return { page: first, nav: first, params };
  return { page: "overview", nav: "overview", params };
}

async function render() {
  const gen = ++generation;
  if (cleanup) {
    try {
      cleanup();
    } catch (err) {
      console.warn("page cleanup failed", err);
    }
    cleanup = null;
  }
  const r = parseRoute(location.hash);
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.route === r.nav);
  clear(view);
  view.dataset.page = r.page;
  try {
    const mod = await PAGES[r.page]();
    if (gen !== generation) return;
    cleanup = (await mod.mount(view, r)) || null;
  } catch (err) {
    if (gen !== generation) return;
    view.append(errorBox(err));
  }
}

function showWho() {
  const who = document.getElementById("who");
  const logout = document.getElementById("logout");
  if (session.open) {
    who.textContent = "open API (no tokens)";
    who.title = "The API has no tokens configured: everyone on this address is admin.";
  } else {
    who.textContent = `${session.name} · ${session.role}`;
    logout.hidden = false;
    logout.addEventListener("click", async () => {
      await send("DELETE", "/v1/session").catch(() => null);
      location.assign("/login.html");
    });
  }
}

async function boot() {
  try {
    await loadSession();
  } catch (err) {
    clear(view).append(errorBox(err));
    return;
  }
  if (!session.open && !session.authenticated) {
    location.replace("/login.html");
    return;
  }
  showWho();
  const live = document.getElementById("live");
  onLiveState((up, watching) => {
    live.hidden = !watching;
    live.textContent = up ? "live" : "reconnecting";
    live.classList.toggle("up", up);
  });
  window.addEventListener("hashchange", render);
  render();
}

boot();

