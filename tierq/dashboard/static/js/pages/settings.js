// Settings: the live scheduler settings as a form (types and defaults from the API's
// OpenAPI document), saved with PUT /v1/settings. The API validates; when it refuses, its
// problem document names the field, and the message is shown under that input.

import { ApiError, get, send, session, watch } from "../api.js";
import { clear, errorBox, h, json, section } from "../dom.js";

const HINTS = {
  aging_rate: "Priority points gained per second of waiting (0: strict priority).",
  deadline_window: "Seconds before its deadline a task gets the deadline boost.",
  deadline_boost: "Points added inside the deadline window.",
  region_lease_seconds: "A region silent this long loses what it holds.",
  max_workflow_nodes: "Largest accepted workflow.",
  max_workflow_edges: "Most edges in one workflow.",
  max_payload_bytes: "Cap on args + kwargs, and on a result, in bytes.",
  max_json_depth: "Nesting limit of args, kwargs and results.",
  max_timeout: "Longest execution timeout a task may ask for, seconds.",
  retention_seconds: "Finished tasks stay visible this long.",
  max_lease_batch: "Most tasks one lease call hands out.",
  "admission.max_queued": "Waiting tasks allowed across all queues.",
  "admission.max_queued_per_queue": "Waiting tasks allowed in any one queue.",
  "admission.soft_watermark": "Above this fraction of a limit only high priorities are admitted.",
  "admission.hard_watermark": "Above this fraction nothing is admitted (429).",
  "admission.soft_min_priority": "Lowest priority admitted above the soft watermark.",
  "admission.retry_after_min": "Shortest Retry-After hint, seconds.",
  "admission.retry_after_max": "Longest Retry-After hint, seconds.",
  "breaker.window": "Outcomes in the sliding window.",
  "breaker.min_samples": "No decision before this many outcomes.",
  "breaker.failure_rate": "Open when failures / samples reach this (0 < rate ≤ 1).",
  "breaker.cooldown": "Seconds open before a probe is let through.",
  "autoscale.min_workers": "Fewest workers per region.",
  "autoscale.max_workers": "Most workers per region.",
  "autoscale.target_utilisation": "Busy-slot fraction the autoscaler aims for.",
  "autoscale.cooldown": "Seconds the need must stay below the count before workers are drained.",
  "autoscale.target_latency": "Seconds: add workers while the median submit-to-start latency stays above this (blank: off).",
};

const NUMBER = /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

function resolve(schemas, s) {
  if (s && s.$ref) return schemas[s.$ref.split("/").pop()];
  return s;
}

/** The settings schema as a tree: {key: {type, default, children?, items?}} */
function describe(schemas, schema) {
  const out = {};
  for (const [key, prop] of Object.entries(schema.properties || {})) {
    const target = resolve(schemas, prop);
    if (target && target.type === "object" && target.properties) out[key] = { type: "object", children: describe(schemas, target) };
    else if (prop.type === "array") out[key] = { type: "array", items: describe(schemas, resolve(schemas, prop.items)), default: prop.default || [] };
    else out[key] = { type: prop.type, default: prop.default };
  }
  return out;
}

/** Fallback when the OpenAPI document is not readable: shape from the values themselves. */
function shapeOf(values) {
  const out = {};
  for (const [k, v] of Object.entries(values)) {
    if (v && typeof v === "object" && !Array.isArray(v)) out[k] = { type: "object", children: shapeOf(v) };
    else if (Array.isArray(v)) out[k] = { type: "array", items: { task_name: { type: "string" }, min_queue_depth: { type: "integer" }, boost: { type: "integer" } }, default: [] };
    else out[k] = { type: typeof v === "number" ? "number" : "string", default: v };
  }
  return out;
}

export async function mount(view) {
  const banner = h("div");
  const formBox = h("div");
  const canEdit = session.open || session.role === "admin";
  view.append(h("h1", null, "Settings"), banner, formBox);

  let shape;
  try {
    const doc = await get("/openapi.json");
    const schemas = doc.components.schemas;
    shape = describe(schemas, schemas.Settings);
  } catch {
    shape = null;
  }
  let current = await get("/v1/settings");
  if (!shape) shape = shapeOf(current);
  let dirty = false;
  let rawMode = false;
  const inputs = new Map(); // path -> input

  function valueAt(obj, path) {
    return path.split(".").reduce((o, k) => (o === undefined || o === null ? undefined : o[k]), obj);
  }

  function field(path, spec, value) {
    const input = h("input", {
      type: "text", inputmode: spec.type === "string" ? "text" : "decimal", name: path, "data-path": path,
      value: value == null ? "" : String(value), disabled: !canEdit, autocomplete: "off", spellcheck: "false",
    });
    input.addEventListener("input", () => { dirty = true; markError(path, null); });
    inputs.set(path, input);
    return h("div", { class: "row" },
      h("label", { for: path }, path.split(".").pop()),
      h("div", null, input, h("div", { class: "field-error", "data-error-for": path, hidden: true })),
      h("div", { class: "hint" }, HINTS[path] || (spec.default !== undefined ? `default ${spec.default}` : "")));
  }

  function rulesEditor(path, spec, rules) {
    const box = h("div", { class: "rules", "data-path": path });
    const keys = Object.keys(spec.items);
    const addRow = (rule, i) => {
      const row = h("div", { class: "rule", "data-rule": String(i) });
      for (const k of keys) {
        const p = `${path}[${i}].${k}`;
        const input = h("input", { type: "text", placeholder: k, "data-path": p, value: rule[k] == null ? "" : String(rule[k]), disabled: !canEdit });
        input.addEventListener("input", () => { dirty = true; markError(p, null); });
        inputs.set(p, input);
        row.append(h("div", null, input, h("div", { class: "field-error", "data-error-for": p, hidden: true })));
      }
      row.append(h("button", { type: "button", class: "small secondary", disabled: !canEdit, on: { click: () => { rules.splice(i, 1); dirty = true; rebuild(); } } }, "Remove"));
      box.append(row);
    };
    const rebuild = () => {
      for (const k of [...inputs.keys()]) if (k.startsWith(`${path}[`)) inputs.delete(k);
      clear(box);
      box.append(h("div", { class: "rule muted small" }, keys.map((k) => h("span", null, k)), h("span")));
      rules.forEach(addRow);
      box.append(h("button", { type: "button", class: "small", disabled: !canEdit, on: { click: () => { collectRules(path, rules, keys); rules.push({}); dirty = true; rebuild(); } } }, "Add rule"));
    };
    box.rules = rules;
    box.keys = keys;
    rebuild();
    return box;
  }

  function collectRules(path, rules, keys) {
    rules.forEach((rule, i) => {
      for (const k of keys) {
        const input = inputs.get(`${path}[${i}].${k}`);
        if (input) rule[k] = input.value;
      }
    });
  }

  function convert(text, type) {
    const t = text.trim();
    if (type === "string") return t;
    // Numbers as typed; anything else goes to the API as text, which refuses it by field.
    return NUMBER.test(t) ? Number(t) : t;
  }

  function collect(tree = shape, prefix = "") {
    const out = {};
    for (const [key, spec] of Object.entries(tree)) {
      const path = prefix ? `${prefix}.${key}` : key;
      if (spec.type === "object") out[key] = collect(spec.children, path);
      else if (spec.type === "array") {
        const box = formBox.querySelector(`.rules[data-path="${CSS.escape(path)}"]`);
        if (!box) continue;
        collectRules(path, box.rules, box.keys);
        // A blank cell of a field with a default (autoscale.task_types[].region: any region)
        // is left out, so the default holds; a blank required one goes as text and is refused.
        out[key] = box.rules.map((rule) => Object.fromEntries(box.keys
          .map((k) => [k, String(rule[k] ?? "")])
          .filter(([k, text]) => text.trim() !== "" || spec.items[k].default === undefined)
          .map(([k, text]) => [k, convert(text, spec.items[k].type)])));
      } else {
        const input = inputs.get(path);
        // Blank where the default is null (autoscale.target_latency): null, i.e. off.
        if (input) out[key] = input.value.trim() === "" && spec.default === null ? null : convert(input.value, spec.type);
      }
    }
    return out;
  }

  function markError(path, message) {
    const input = inputs.get(path);
    const box = formBox.querySelector(`[data-error-for="${CSS.escape(path)}"]`);
    if (input) input.classList.toggle("invalid", Boolean(message));
    if (box) {
      box.textContent = message || "";
      box.hidden = !message;
    }
  }

  function showProblem(err) {
    for (const p of inputs.keys()) markError(p, null);
    if (err instanceof ApiError && err.field) {
      // The most specific input the field names (priority_rules[0].boost, else its parent).
      let path = err.field;
      while (path && !inputs.has(path)) path = path.includes(".") ? path.slice(0, path.lastIndexOf(".")) : "";
      if (path) {
        markError(path, err.detail);
        inputs.get(path).focus();
        clear(banner).append(errorBox(err));
        return;
      }
    }
    clear(banner).append(errorBox(err));
  }

  async function save(body) {
    clear(banner);
    try {
      current = await send("PUT", "/v1/settings", body);
      dirty = false;
      render();
      banner.append(h("div", { class: "ok-box", role: "status", "data-role": "saved" }, "Saved. The master applies the new settings at once."));
    } catch (err) {
      showProblem(err);
    }
  }

  function render() {
    inputs.clear();
    clear(formBox);
    if (rawMode) {
      const area = h("textarea", { "data-role": "settings-json", disabled: !canEdit }, json(collectFull()));
      formBox.append(section("Settings as JSON", area, h("div", { class: "actions" },
        h("button", { type: "button", class: "primary", disabled: !canEdit, on: { click: () => save(area.value) } }, "Save JSON"),
        h("button", { type: "button", on: { click: () => { rawMode = false; render(); } } }, "Back to the form"))));
      return;
    }
    const general = [];
    const groups = [];
    for (const [key, spec] of Object.entries(shape)) {
      if (spec.type === "object") {
        groups.push(h("fieldset", null, h("legend", null, key),
          Object.entries(spec.children).map(([k, s]) => s.type === "array"
            // A list inside a group (autoscale.regions): rows like the priority rules.
            ? h("div", null, h("div", { class: "muted small" }, `${key}.${k}`),
              rulesEditor(`${key}.${k}`, s, (valueAt(current, `${key}.${k}`) ?? []).map((r) => ({ ...r }))))
            : field(`${key}.${k}`, s, valueAt(current, `${key}.${k}`) ?? s.default))));
      } else if (spec.type === "array") {
        groups.push(h("fieldset", null, h("legend", null, key), rulesEditor(key, spec, (valueAt(current, key) ?? []).map((r) => ({ ...r })))));
      } else {
        general.push(field(key, spec, valueAt(current, key) ?? spec.default));
      }
    }
    const form = h("form", { class: "settings", "data-role": "settings-form", novalidate: true },
      h("fieldset", null, h("legend", null, "scheduling"), general), groups,
      h("div", { class: "actions" },
        h("button", { type: "submit", class: "primary", disabled: !canEdit, "data-action": "save" }, "Save settings"),
        h("button", { type: "button", on: { click: () => { dirty = false; render(); clear(banner); } } }, "Reset"),
        h("button", { type: "button", on: { click: () => { rawMode = true; render(); } } }, "Edit as JSON"),
        canEdit ? null : h("span", { class: "muted" }, "Your role can read settings, not change them.")));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      save(collect());
    });
    formBox.append(form);
  }

  /** Every field with its current or default value (what the JSON editor starts from). */
  function collectFull(tree = shape, prefix = "") {
    const out = {};
    for (const [key, spec] of Object.entries(tree)) {
      const path = prefix ? `${prefix}.${key}` : key;
      if (spec.type === "object") out[key] = collectFull(spec.children, path);
      else out[key] = valueAt(current, path) ?? spec.default;
    }
    return out;
  }

  const stop = watch({ kinds: ["settings_changed"] }, async () => {
    if (dirty) {
      clear(banner).append(h("div", { class: "error-box" }, "The settings were changed elsewhere. Reset to see them (your edits would be lost)."));
      return;
    }
    current = await get("/v1/settings");
    render();
  });
  render();
  return () => stop();
}
