// Regions and workers: capacity, utilisation, heartbeats, running tasks and breakers per
// region; drain a worker or a whole region (confirmed first, refusals shown).

import { enc, get, send } from "../api.js";
import { clear, confirmDialog, errorBox, fmtAgo, fmtNum, h, link, progressBar, section, toast } from "../dom.js";

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
    try {
      [regions, workers, stats] = await Promise.all([get("/v1/regions"), get("/v1/workers"), get("/v1/stats")]);
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
      body.append(h("section", { class: "panel", "data-region": r.name },
        h("h2", null, `Region ${r.name}`),
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
  return () => {
    alive = false;
    clearTimeout(timer);
  };
}
