// Overview: throughput, queue depth, latency and success rate over the last minutes, and
// the health of master, regions and workers, open breakers and backpressure.
//
// Sources: /v1/stats every second (running totals: submitted, succeeded, dead; queue depth
// by band and by region; breakers; admission), /v1/regions and /v1/workers every 3 s, and
// the event feed for what the totals do not count: task_started (started/s, and the
// submit -> start latency: a task id begins with its submission time in milliseconds) and
// task_failed (failed attempts/s, retries included). The API does not expose latency
// percentiles, so they are computed here over the last minute of starts.

import { get, watch } from "../api.js";
import { timeChart } from "../chart.js";
import { clear, fmtAgo, fmtDuration, fmtNum, fmtRate, h, idTime, link, section } from "../dom.js";

const BANDS = ["critical", "high", "normal", "low"];
const BAND_COLORS = { critical: "#ef4444", high: "#f59e0b", normal: "#60a5fa", low: "#9ca3af" };
const RATE_WINDOW = 10; // seconds the shown rates average over
const LATENCY_WINDOW = 60; // seconds of starts the percentiles cover
const MAX_SAMPLES = 50_000;

function quantile(sorted, q) {
  if (!sorted.length) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

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
  const chartThroughput = h("div", { class: "chart" });
  const chartQueue = h("div", { class: "chart" });
  const chartLatency = h("div", { class: "chart" });
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
      section("Submit → start latency (computed in the browser from the event feed)", chartLatency),
      h("div", null, section("Backpressure", pressure), section("Circuit breakers", breakers))),
  );

  const charts = [
    timeChart(chartThroughput, {
      series: [
        { label: "submitted", color: "#2563eb" },
        { label: "started", color: "#f59e0b" },
        { label: "succeeded", color: "#22c55e" },
        { label: "failed", color: "#ef4444" },
      ],
    }),
    timeChart(chartQueue, {
      series: [
        { label: "ready", color: "#60a5fa", fmt: (v) => fmtNum(v) },
        { label: "running", color: "#f59e0b", fmt: (v) => fmtNum(v) },
        ...BANDS.map((b) => ({ label: `waiting ${b}`, color: BAND_COLORS[b], fmt: (v) => fmtNum(v) })),
      ],
    }),
    timeChart(chartLatency, {
      yLabel: "seconds",
      series: [
        { label: "p50", color: "#2563eb", fmt: (v) => fmtDuration(v) },
        { label: "p99", color: "#ef4444", fmt: (v) => fmtDuration(v) },
      ],
    }),
  ];

  // Counts from the event feed since the last tick, and start latencies.
  let started = 0;
  let failed = 0;
  const latencies = []; // [browser time, seconds]
  const stop = watch({ kinds: ["task_started", "task_failed"] }, (kind, ev) => {
    if (kind === "task_started") {
      started += 1;
      if (ev.attempt === 1) {
        const submitted = idTime(ev.id);
        if (submitted !== null) {
          latencies.push([Date.now() / 1000, Math.max(0, ev.at - submitted)]);
          if (latencies.length > MAX_SAMPLES) latencies.splice(0, latencies.length - MAX_SAMPLES);
        }
      }
    } else {
      failed += 1;
    }
  });

  const samples = []; // {t, dt, submitted, started, succeeded, failed, dead}
  let last = null;
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
    const now = Date.now() / 1000;
    const t = stats.totals;
    if (last) {
      const dt = Math.max(0.001, stats.now - last.now);
      const sample = {
        t: now, dt,
        submitted: (t.submitted || 0) - (last.totals.submitted || 0),
        succeeded: (t.succeeded || 0) - (last.totals.succeeded || 0),
        dead: (t.dead || 0) - (last.totals.dead || 0),
        started, failed,
      };
      samples.push(sample);
      while (samples.length && samples[0].t < now - 330) samples.shift();
      charts[0].push(now, [sample.submitted / dt, sample.started / dt, sample.succeeded / dt, sample.failed / dt]);
    }
    started = 0;
    failed = 0;
    last = stats;
    renderStats(stats, now);
    if (slow++ % 3 === 0) await refreshFleet(stats.now);
    renderHealth();
  }

  function windowRate(key, now) {
    let n = 0;
    let dt = 0;
    for (const s of samples) if (s.t >= now - RATE_WINDOW) { n += s[key]; dt += s.dt; }
    return dt > 0 ? n / dt : null;
  }

  function renderStats(stats, now) {
    const t = stats.totals;
    for (const key of ["submitted", "started", "succeeded", "failed"]) {
      cards[key].value.textContent = fmtRate(windowRate(key, now));
    }
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
    for (const s of samples) { ok += s.succeeded; bad += s.dead; }
    const overall = (t.succeeded || 0) + (t.dead || 0);
    cards.success.value.textContent = ok + bad ? `${((100 * ok) / (ok + bad)).toFixed(1)}%` : "–";
    cards.success.sub.textContent = overall ? `all time ${((100 * (t.succeeded || 0)) / overall).toFixed(1)}%` : "no finished tasks";
    const recent = latencies.filter(([at]) => at >= now - LATENCY_WINDOW).map(([, v]) => v).sort((a, b) => a - b);
    const p50 = quantile(recent, 0.5);
    const p99 = quantile(recent, 0.99);
    cards.latency.value.textContent = p50 === null ? "–" : `${fmtDuration(p50)} / ${fmtDuration(p99)}`;
    cards.latency.sub.textContent = `${fmtNum(recent.length)} starts in the last minute`;
    charts[1].push(now, [stats.queue_depth, running, ...BANDS.map((b) => stats.waiting_by_band[b] || 0)]);
    charts[2].push(now, [p50, p99]);

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
            h("td", null, fmtAgo(b.opened_at, stats.now))))))
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
    stop();
    for (const c of charts) c.destroy();
  };
}
