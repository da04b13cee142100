// Overview: throughput, queue depth, latency and success rate over the last minutes, and
// the health of master, regions and workers, open breakers and backpressure.
//
// Sources: /v1/stats every second, and /v1/regions and /v1/workers every 3 s. The stats
// reply carries the running totals, queue depth by band, queue and region, breakers and
// admission, and the master's live figures: `history` (events by kind in each whole second
// of the last minute: the throughput chart and the per-second cards are filled from it on
// the first reply, then kept up to date) and `latency` (submit -> start p50/p99 of recent
// first attempts, measured by the master). Nothing is computed from the event feed here.
// The master keeps no history of queue depth or latency: the readings this page took are
// kept in the tab's sessionStorage, so a reload draws them again instead of starting empty.

import { get } from "../api.js";
import { timeChart } from "../chart.js";
import { clear, fmtAgo, fmtDuration, fmtNum, fmtRate, fmtTime, h, link, section, stateColor } from "../dom.js";

const BANDS = ["critical", "high", "normal", "low"];
// Not the colours of task states: the queue chart draws bands next to states.
const BAND_COLORS = { critical: "#db2777", high: "#0d9488", normal: "#4f46e5", low: "#84cc16" };
const RATE_WINDOW = 10; // seconds the shown rates average over
const KEEP = 330; // seconds of history kept for the charts (they show 300)
const SAVED = "tierq.overview.readings"; // sessionStorage key: {queue: [[t, ...values]], latency: [...]}
// The throughput series: event kind counted, label, colour (of the state it leads to).
const FLOWS = [
  ["task_submitted", "submitted", "#2563eb"],
  ["task_started", "started", stateColor("running")],
  ["task_succeeded", "succeeded", stateColor("succeeded")],
  ["task_failed", "failed", stateColor("failed")],
];

function card(label, metric) {
  const value = h("div", { class: "value", "data-metric": metric }, "–");
  const sub = h("div", { class: "sub", "data-metric": `${metric}-sub` }, "\u00a0");
  return { el: h("div", { class: "card" }, h("div", { class: "label" }, label), value, sub), value, sub };
}

export async function mount(view) {
  const cards = {
    submitted: card("Submitted / s", "submitted-rate"),
    started: card("Started / s", "started-rate"),
    succeeded: card("Succeeded / s", "succeeded-rate"),
    failed: card("Failed attempts / s", "failed-rate"),
    running: card("Running", "running"),
    ready: card("Queue depth (ready)", "queue-depth"),
    success: card("Success rate", "success-rate"),
    latency: card("Submit → start p50 / p99", "latency"),
  };
  const totals = {
    submitted: h("span", { "data-metric": "submitted-total" }, "–"),
    succeeded: h("span", { "data-metric": "succeeded-total" }, "–"),
    dead: h("span", { "data-metric": "dead-total" }, "–"),
    cancelled: h("span", { "data-metric": "cancelled-total" }, "–"),
    tasks: h("span", { "data-metric": "tasks-total" }, "–"),
  };
  const health = h("div", { class: "health", "data-role": "health" });
  const pressure = h("div", { "data-role": "backpressure" });
  const breakers = h("div", { "data-role": "breakers" });
  const bands = h("div", { class: "stack-bars", "data-role": "bands" });
  const byRegion = h("div", { class: "stack-bars", "data-role": "by-region" });
  const byQueue = h("div", { class: "stack-bars", "data-role": "by-queue" });
  const chartThroughput = h("div", { class: "chart", "data-chart": "throughput" });
  const chartQueue = h("div", { class: "chart", "data-chart": "queue" });
  const chartLatency = h("div", { class: "chart", "data-chart": "latency" });
  const error = h("div");

  view.append(
    h("h1", null, "Overview"),
    error,
    h("div", { class: "cards" }, Object.values(cards).map((c) => c.el)),
    h("div", { class: "panel small muted" },
      "Totals since the log began — submitted ", totals.submitted, " · succeeded ", totals.succeeded,
      " · dead ", totals.dead, " · cancelled ", totals.cancelled, " · in memory ", totals.tasks),
    section("Health", health),
    h("div", { class: "grid cols-2" },
      section("Throughput (per second)", chartThroughput),
      section("Queue depth", chartQueue)),
    h("div", { class: "grid cols-3" },
      section("Waiting by priority band", bands),
      section("Held by region (assigned + running)", byRegion),
      section("Waiting by queue", byQueue)),
    h("div", { class: "grid cols-2" },
      section("Submit → start latency (recent first attempts, measured by the master)", chartLatency),
      h("div", null, section("Backpressure", pressure), section("Circuit breakers", breakers))),
  );

  const charts = [
    timeChart(chartThroughput, { series: FLOWS.map(([, label, color]) => ({ label, color })) }),
    timeChart(chartQueue, {
      series: [
        { label: "ready", color: stateColor("ready"), fmt: (v) => fmtNum(v) },
        { label: "running", color: stateColor("running"), fmt: (v) => fmtNum(v) },
        ...BANDS.map((b) => ({ label: `waiting ${b}`, color: BAND_COLORS[b], fmt: (v) => fmtNum(v) })),
      ],
    }),
    timeChart(chartLatency, {
      yLabel: "seconds",
      series: [
        { label: "p50", color: "#2563eb", fmt: (v) => fmtDuration(v) },
        { label: "p99", color: "#c026d3", fmt: (v) => fmtDuration(v) },
      ],
    }),
  ];

  // Events by kind per whole second (the master's clock), from the stats' history.
  const seconds = new Map();
  // Queue depth and latency readings taken so far ([master time, ...values]), restored first.
  let readings = { queue: [], latency: [] };
  let restored = false;

  function restore(now) {
    restored = true;
    try {
      const saved = JSON.parse(sessionStorage.getItem(SAVED) || "null");
      if (saved && Array.isArray(saved.queue) && Array.isArray(saved.latency)) readings = saved;
    } catch {
      return;
    }
    for (const [key, chart] of [["queue", charts[1]], ["latency", charts[2]]]) {
      const rows = readings[key] = readings[key].filter((r) => Array.isArray(r) && r[0] > now - KEEP && r[0] < now);
      if (rows.length) chart.set(rows.map((r) => r[0]), chart.series.map((_, i) => rows.map((r) => r[i + 1])));
    }
  }

  function record(key, chart, now, values) {
    chart.push(now, values);
    const rows = readings[key];
    rows.push([now, ...values]);
    while (rows.length && rows[0][0] < now - KEEP) rows.shift();
  }
  let timer = null;
  let slow = 0;
  let regions = null;
  let workers = null;
  let fleetNow = null; // the master's clock when regions and workers were read
  let masterOk = null;
  let masterSeen = null;
  let alive = true;

  async function refreshFleet(now) {
    try {
      [regions, workers] = await Promise.all([get("/v1/regions"), get("/v1/workers")]);
      fleetNow = now ?? Date.now() / 1000;
    } catch {
      regions = workers = null;
    }
  }

  async function tick() {
    let stats;
    try {
      stats = await get("/v1/stats");
      masterOk = true;
      masterSeen = Date.now() / 1000;
      clear(error);
    } catch (err) {
      masterOk = false;
      renderHealth();
      clear(error).append(h("div", { class: "error-box", role: "alert" }, `Master unreachable: ${err.detail || err.message}`));
      return;
    }
    if (!alive) return;
    const now = stats.now;
    for (const r of stats.history || []) seconds.set(r.at, r.counts || {});
    for (const at of seconds.keys()) if (at < now - KEEP) seconds.delete(at);
    const ats = [...seconds.keys()].sort((a, b) => a - b);
    charts[0].set(ats, FLOWS.map(([kind]) => ats.map((at) => seconds.get(at)[kind] || 0)));
    renderStats(stats, now);
    if (slow++ % 3 === 0) await refreshFleet(stats.now);
    renderHealth();
  }

  /** Events of `kind` per second over the last RATE_WINDOW whole seconds the master knows. */
  function windowRate(kind, now) {
    let n = 0;
    let dt = 0;
    for (const [at, counts] of seconds) if (at >= Math.floor(now) - RATE_WINDOW) { n += counts[kind] || 0; dt += 1; }
    return dt > 0 ? n / dt : null;
  }

  function renderStats(stats, now) {
    const t = stats.totals;
    for (const [kind, label] of FLOWS) cards[label].value.textContent = fmtRate(windowRate(kind, now));
    cards.submitted.sub.textContent = `total ${fmtNum(t.submitted || 0)}`;
    cards.succeeded.sub.textContent = `total ${fmtNum(t.succeeded || 0)}`;
    cards.failed.sub.textContent = `dead total ${fmtNum(t.dead || 0)}`;
    const running = stats.by_state.running || 0;
    cards.running.value.textContent = fmtNum(running);
    cards.running.sub.textContent = `assigned ${fmtNum(stats.by_state.assigned || 0)}`;
    cards.ready.value.textContent = fmtNum(stats.queue_depth);
    cards.ready.sub.textContent = `waiting ${fmtNum(stats.admission.waiting)} · pending ${fmtNum(stats.by_state.pending || 0)}`;
    // Success rate: of the tasks that finished in the last minutes (succeeded vs dead).
    let ok = 0;
    let bad = 0;
    for (const counts of seconds.values()) { ok += counts.task_succeeded || 0; bad += counts.task_dead || 0; }
    const overall = (t.succeeded || 0) + (t.dead || 0);
    cards.success.value.textContent = ok + bad ? `${((100 * ok) / (ok + bad)).toFixed(1)}%` : "–";
    cards.success.sub.textContent = overall ? `all time ${((100 * (t.succeeded || 0)) / overall).toFixed(1)}%` : "no finished tasks";
    const lat = stats.latency || { samples: 0 };
    const p50 = lat.p50_ms == null ? null : lat.p50_ms / 1000;
    const p99 = lat.p99_ms == null ? null : lat.p99_ms / 1000;
    cards.latency.value.textContent = p50 === null ? "–" : `${fmtDuration(p50)} / ${fmtDuration(p99)}`;
    cards.latency.sub.textContent = `over the last ${fmtNum(lat.samples)} first start${lat.samples === 1 ? "" : "s"}`;
    if (!restored) restore(now);
    record("queue", charts[1], now, [stats.queue_depth, running, ...BANDS.map((b) => stats.waiting_by_band[b] || 0)]);
    record("latency", charts[2], now, [p50, p99]);
    try {
      sessionStorage.setItem(SAVED, JSON.stringify(readings));
    } catch {
      // storage full or disabled: the charts start from one reading next time
    }

    totals.submitted.textContent = fmtNum(t.submitted || 0);
    totals.succeeded.textContent = fmtNum(t.succeeded || 0);
    totals.dead.textContent = fmtNum(t.dead || 0);
    totals.cancelled.textContent = fmtNum(t.cancelled || 0);
    totals.tasks.textContent = fmtNum(stats.tasks);

    bars(bands, BANDS.map((b) => [b, stats.waiting_by_band[b] || 0]));
    bars(byRegion, Object.entries(stats.held_by_region));
    bars(byQueue, Object.entries(stats.waiting_by_queue).sort((a, b) => b[1] - a[1]).slice(0, 12));

    const a = stats.admission;
    const level = { open: "ok", soft: "warn", hard: "bad" }[a.level] || "warn";
    clear(pressure).append(
      h("p", null, h("span", { class: `pill ${level}`, "data-role": "admission-level" }, a.level),
        ` ${fmtNum(a.waiting)} waiting of ${fmtNum(a.max_queued)} allowed · ${fmtNum(a.rejected)} rejected`),
      Object.keys(a.queues).length
        ? h("p", null, "Queues above their soft watermark: ",
          Object.entries(a.queues).map(([q, l]) => h("span", { class: `pill ${l === "hard" ? "bad" : "warn"}` }, `${q}: ${l}`)))
        : h("p", { class: "muted small" }, "No queue above its soft watermark."),
    );
    const open = stats.breakers.filter((b) => b.state !== "closed");
    clear(breakers).append(
      open.length
        ? h("table", { class: "data" },
          h("thead", null, h("tr", null, h("th", null, "Breaker"), h("th", null, "State"), h("th", { class: "num" }, "Failures"), h("th", null, "Opened"))),
          h("tbody", null, open.map((b) => h("tr", null,
            h("td", { class: "mono" }, b.key),
            h("td", null, h("span", { class: `pill ${b.state === "open" ? "bad" : "warn"}` }, b.state)),
            h("td", { class: "num" }, `${b.failures}/${b.samples}`),
            h("td", { title: fmtTime(b.opened_at) }, fmtAgo(b.opened_at, stats.now))))))
        : h("p", { class: "muted" }, `All ${stats.breakers.length} breakers closed.`),
    );
  }

  function bars(el, rows) {
    const max = Math.max(1, ...rows.map(([, n]) => n));
    clear(el);
    if (!rows.length) el.append(h("p", { class: "muted small" }, "Nothing."));
    for (const [label, n] of rows) {
      const fill = h("div", { class: "bar-fill", css: { width: `${((100 * n) / max).toFixed(1)}%`, background: BAND_COLORS[label] || "#2563eb" } });
      el.append(h("div", { class: "stack-row" },
        h("span", { class: "mono small" }, label),
        h("div", { class: "bar" }, fill, h("span", { class: "bar-label" }, "")),
        h("span", { class: "num small" }, fmtNum(n))));
    }
  }

  function renderHealth() {
    const now = fleetNow ?? Date.now() / 1000;
    clear(health);
    health.append(h("div", { class: "item", "data-role": "master-health" },
      h("span", { class: `dot ${masterOk ? "ok" : masterOk === false ? "bad" : ""}` }),
      "master ", masterOk ? h("span", { class: "muted small" }, "answering") : h("span", { class: "muted small" }, masterSeen ? `last answer ${fmtAgo(masterSeen)}` : "not answering")));
    if (!regions) return;
    for (const r of regions.regions) {
      const left = r.lease_expires_at - now;
      const ws = (workers ? workers.workers : []).filter((w) => w.region === r.name);
      const capacity = ws.reduce((n, w) => n + w.concurrency, 0);
      const running = ws.reduce((n, w) => n + w.running, 0);
      const stale = ws.filter((w) => now - w.last_heartbeat > 10).length;
      health.append(h("div", { class: "item", "data-role": "region-health" },
        h("span", { class: `dot ${left > 0 ? (stale ? "warn" : "ok") : "bad"}` }),
        link(["regions"], null, `region ${r.name}`),
        h("span", { class: "muted small" },
          `${left > 0 ? "lease ok" : "lease expired"} · ${ws.length} worker${ws.length === 1 ? "" : "s"}`
          + ` · ${running}/${capacity} slots busy${stale ? ` · ${stale} stale` : ""}`)));
    }
    if (!regions.regions.length) health.append(h("div", { class: "item" }, h("span", { class: "dot bad" }), "no regions registered"));
  }

  await tick();
  const loop = async () => {
    if (!alive) return;
    await tick();
    if (alive) timer = setTimeout(loop, 1000);
  };
  timer = setTimeout(loop, 1000);

  return () => {
    alive = false;
    clearTimeout(timer);
    for (const c of charts) c.destroy();
  };
}
