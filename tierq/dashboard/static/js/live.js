// Applying lifecycle events to task records the pages hold (list rows, the task page).

export const TASK_KINDS = [
  "task_ready", "task_assigned", "tasks_assigned", "task_started", "task_progress", "task_succeeded", "task_failed",
  "task_dead", "task_cancelled", "task_skipped", "task_reprioritized", "task_retried",
];

/**
 * The per-task updates in one event, as [task id, kind, event] triples. A lease emits one
 * `tasks_assigned` ({region, ids, attempts}) for every task it hands out: it becomes one
 * `task_assigned` ({id, attempt, region}) per task, as older masters wrote them. Any other
 * event is about `ev.id`, or (workflow, region, eviction... events) about no single task.
 */
export function perTask(kind, ev) {
  if (kind === "tasks_assigned") {
    const ids = Array.isArray(ev.ids) ? ev.ids : [];
    const attempts = Array.isArray(ev.attempts) ? ev.attempts : [];
    const out = [];
    ids.forEach((id, i) => {
      if (typeof id !== "string") return;
      out.push([id, "task_assigned", { kind: "task_assigned", at: ev.at, id, attempt: attempts[i], region: ev.region }]);
    });
    return out;
  }
  return typeof ev.id === "string" ? [[ev.id, kind, ev]] : [];
}

/** The update a `tasks_assigned` event holds for one task, as a `task_assigned`, or null. */
export function assignedOne(ev, id) {
  const i = Array.isArray(ev.ids) ? ev.ids.indexOf(id) : -1;
  if (i < 0) return null;
  const attempt = Array.isArray(ev.attempts) ? ev.attempts[i] : undefined;
  return { kind: "task_assigned", at: ev.at, id, attempt, region: ev.region };
}

/**
 * Update a task-like record {id, state, region, worker, attempt, priority, progress} in place.
 * A `tasks_assigned` event applies when it lists the record's id.
 */
export function applyEvent(task, kind, ev) {
  if (kind === "tasks_assigned") {
    const one = task.id === undefined ? null : assignedOne(ev, task.id);
    return one ? applyEvent(task, "task_assigned", one) : false;
  }
  switch (kind) {
    case "task_ready": task.state = "ready"; break;
    case "task_assigned": task.state = "assigned"; task.region = ev.region; task.attempt = ev.attempt; break;
    case "task_started": task.state = "running"; task.worker = ev.worker; task.attempt = ev.attempt; break;
    case "task_progress": task.progress = ev.fraction; task.progress_message = ev.message ?? null; break;
    case "task_succeeded": task.state = "succeeded"; task.progress = 1; break;
    case "task_failed": task.state = "failed"; task.error = ev.error; break;
    case "task_dead": task.state = "dead"; task.reason = ev.reason; break;
    case "task_cancelled": task.state = "cancelled"; task.reason = ev.reason; break;
    case "task_skipped": task.state = "skipped"; task.reason = ev.reason; break;
    case "task_reprioritized": task.priority = ev.new; break;
    case "task_retried": task.state = ev.state; task.attempt = ev.attempt; break;
    default: return false;
  }
  return true;
}

const ID = /"id":"([^"\\]{1,256})"/;

/**
 * The task id of a raw event (cheap: no JSON parse for events about other tasks). Null for
 * events without one, such as `tasks_assigned`, whose `ids` list several tasks.
 */
export function rawId(data) {
  const m = ID.exec(data);
  return m ? m[1] : null;
}
