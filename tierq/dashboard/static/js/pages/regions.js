// Regions and workers: capacity, utilisation, heartbeats, running tasks and breakers per
// region; its autoscaler (desired and actual workers, last decisions, health); drain a worker
// or a whole region (confirmed first, refusals shown). Live: region and autoscaler events
// refresh it at once, and it re-reads every 3 s (heartbeats are not events).

import { AUTOSCALE_KINDS, enc, get, send, watch } from "../api.js";
import { clear, confirmDialog, debounce, errorBox, fmtAgo, fmtNum, fmtTime, h, link, progressBar, section, toast } from "../dom.js";

const STALE = 10; // seconds without a heartbeat before a worker is flagged

export async function mount(view) {
  const error = h("div");
  const body = h("div", { "data-role": "regions" });
  view.append(h("h1", null, "Regions & workers"), error, body);
  let alive = true;
  let timer = null;

  async function drain(region, worker) {
    const what = worker ? `worker ${worker} in region ${region}` : `every worker of region ${region}`;
    if (!(await confirmDialog(worker ? "Drain worker" : "Drain region",
      `Drain ${what}? It takes no new tasks and leaves once its running tasks finish.`, "Drain", true))) return;
    const url = worker ? `/v1/regions/${enc(region)}/workers/${enc(worker)}/drain` : `/v1/regions/${enc(region)}/drain`;
    try {
      const out = await send("POST", url);
      toast(`Draining ${out.workers} worker${out.workers === 1 ? "" : "s"} in ${region}`);
      clear(error);
      await refresh();
    } catch (err) {
      clear(error).append(errorBox(err));
    }
  }

  async function refresh() {
    let regions;
    let workers;
    let stats;
    let scalers;
    try {
      [regions, workers, stats, scalers] = await Promise.all([
        get("/v1/regions"), get("/v1/workers"), get("/v1/stats"),
        // An older API has no autoscalers route: show the rest anyway.
        get("/v1/autoscalers").catch(() => ({ autoscalers: [] })),
      ]);
    } catch (err) {
      clear(error).append(errorBox(err));
      return;
    }
    const now = stats.now;
    clear(body);
    if (!regions.regions.length) body.append(h("p", { class: "muted" }, "No region is registered with the master."));
    for (const r of regions.regions) {
      const ws = workers.workers.filter((w) => w.region === r.name).sort((a, b) => a.id.localeCompare(b.id));
      const capacity = ws.reduce((n, w) => n + (w.draining ? 0 : w.concurrency), 0);
      const running = ws.reduce((n, w) => n + w.running, 0);
      const util = capacity ? running / capacity : 0;
      const left = r.lease_expires_at - now;
      const breakers = stats.breakers.filter((b) => b.key.split(":")[1] === r.name);
      const openBreakers = breakers.filter((b) => b.state !== "closed");
      const util_bar = progressBar(util, `${running} / ${capacity} slots (${(util * 100).toFixed(0)}%)`);
      util_bar.classList.add("util");
      // A region may have several autoscalers, one per pool of task types.
      const pools = scalers.autoscalers.filter((a) => a.region === r.name);
      body.append(h("section", { class: "panel", "data-region": r.name },
        // The name exactly as typed (panel titles are otherwise upper-cased).
        h("h2", null, "Region ", h("span", { class: "as-typed", "data-role": "region-name" }, r.name)),
        h("div", { class: "grid cols-2" },
          h("dl", { class: "kv" },
            h("dt", null, "Instance"), h("dd", { class: "mono" }, r.instance),
            h("dt", null, "Lease"), h("dd", null, h("span", { class: `pill ${left > 0 ? "ok" : "bad"}` }, left > 0 ? `renewed, expires in ${left.toFixed(1)} s` : `expired ${fmtAgo(r.lease_expires_at, now)}`)),
            h("dt", null, "Held (assigned + running)"), h("dd", null, fmtNum(r.held)),
            h("dt", null, "Task types"), h("dd", null, r.task_types.join(", ") || "–"),
            h("dt", null, "Labels"), h("dd", null, r.labels.join(", ") || "–"),
            h("dt", null, "Breakers"), h("dd", null, openBreakers.length
              ? openBreakers.map((b) => h("span", { class: `pill ${b.state === "open" ? "bad" : "warn"}`, title: `${b.failures}/${b.samples} failed` }, `${b.key.split(":").slice(2).join(":")}: ${b.state}`))
              : `${breakers.length} closed`)),
          h("div", null,
            h("div", { class: "muted small" }, "Utilisation"), util_bar,
            h("div", { class: "actions" },
              h("button", { type: "button", class: "danger small", "data-action": "drain-region", on: { click: () => drain(r.name, null) } }, "Drain region")))),
        ...(pools.length ? pools.map((a) => autoscalerBlock(a, now, pools.length > 1)) : [autoscalerBlock(null, now, false)]),
        h("table", { class: "data workers" },
          h("thead", null, h("tr", null,
            ["Worker", "Host / pid", "Pool", "Slots", "Running", "Utilisation", "Last heartbeat", "Done", "Failed", "", ""].map((c) => h("th", null, c)))),
          h("tbody", null, ws.length ? ws.map((w) => {
            const age = now - w.last_heartbeat;
            const bar = progressBar(w.concurrency ? w.running / w.concurrency : 0, `${w.running}/${w.concurrency}`);
            bar.classList.add("util");
            return h("tr", { "data-worker": w.id },
              h("td", { class: "mono small" }, w.id),
              h("td", { class: "small" }, `${w.host || "?"} / ${w.pid || "?"}`),
              h("td", null, w.pool || "async"),
              h("td", { class: "num" }, fmtNum(w.concurrency)),
              h("td", { class: "num" }, fmtNum(w.running)),
              h("td", null, bar),
              h("td", null, h("span", { class: `pill ${age > STALE ? "bad" : "ok"}` }, fmtAgo(w.last_heartbeat, now))),
              h("td", { class: "num" }, fmtNum(w.completed || 0)),
              h("td", { class: "num" }, fmtNum(w.failed || 0)),
              h("td", null, w.draining ? h("span", { class: "pill warn", "data-role": "draining" }, "draining") : ""),
              h("td", null, h("button", { type: "button", class: "small", disabled: w.draining, "data-action": "drain-worker", on: { click: () => drain(r.name, w.id) } }, "Drain")),
            );
          }) : h("tr", null, h("td", { colspan: 11, class: "muted" }, "No workers.")))),
        h("p", { class: "small" }, link(["tasks", { region: r.name }], null, "Tasks held by this region")),
      ));
    }
    clear(error);
  }

  const loop = async () => {
    if (!alive) return;
    await refresh();
    if (alive) timer = setTimeout(loop, 3000);
  };
  await loop();
  const soon = debounce(() => { if (alive) refresh(); }, 200);
  const stop = watch({ kinds: ["region_registered", "region_expired", ...AUTOSCALE_KINDS] }, soon, { onOpen: soon });
  return () => {
    alive = false;
    clearTimeout(timer);
    stop();
  };
}

/** A region's autoscaler: desired vs actual workers, its health and its latest decisions.
 *  With several in the region (``several``), each is titled by its pool's task types. */
function autoscalerBlock(a, now, several) {
  if (!a) {
    return h("p", { class: "muted small", "data-role": "autoscaler" },
      "No autoscaler answers for this region (its workers are started by hand, or KEDA scales them).");
  }
  const stale = now - a.checked_at > Math.max(5, 3 * a.interval);
  const health = a.error
    ? h("span", { class: "pill bad", title: a.error }, `error: ${a.error}`)
    : stale
      ? h("span", { class: "pill warn" }, `no check for ${fmtAgo(a.checked_at, now)}`)
      : h("span", { class: "pill ok" }, `checked ${fmtAgo(a.checked_at, now)}`);
  const counts = [`${a.actual} live${a.starting ? ` (${a.starting} starting)` : ""}`];
  if (a.draining) counts.push(`${a.draining} draining`);
  if (a.restarts) counts.push(`${a.restarts} replaced after a crash`);
  const decisions = (a.decisions || []).slice(-5).reverse();
  return h("div", { class: "autoscaler", "data-role": "autoscaler", "data-pool": a.task_types.join(",") },
    h("h3", null, several ? `Autoscaler: ${a.task_types.join(", ") || "–"}` : "Autoscaler"),
    h("dl", { class: "kv" },
      h("dt", null, "Workers"), h("dd", null,
        h("strong", { "data-role": "desired" }, `${a.desired} desired`), " · ",
        h("span", { "data-role": "actual" }, counts.join(" · "))),
      h("dt", null, "Bounds"), h("dd", null, `${a.min_workers}–${a.max_workers} workers (${a.provider} provider; task types ${a.task_types.join(", ") || "–"})`),
      h("dt", null, "Health"), h("dd", { "data-role": "health" }, health),
      h("dt", null, "Now"), h("dd", { class: "small" }, a.reason || "–")),
    h("table", { class: "data decisions" },
      h("thead", null, h("tr", null, ["When", "Change", "Reason"].map((c) => h("th", null, c)))),
      h("tbody", null, decisions.length ? decisions.map((d) => h("tr", { "data-decision": d.direction },
        h("td", { class: "small" }, fmtTime(d.at)),
        h("td", null, h("span", { class: `pill ${d.direction === "up" ? "ok" : "warn"}` }, `${d.previous} → ${d.desired}`)),
        h("td", { class: "small" }, d.reason),
      )) : h("tr", null, h("td", { colspan: 3, class: "muted" }, "No change yet.")))));
}
