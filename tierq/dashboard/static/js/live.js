// Applying lifecycle events to task records the pages hold (list rows, the task page).

export const TASK_KINDS = [
  "task_ready", "task_assigned", "task_started", "task_progress", "task_succeeded", "task_failed",
  "task_dead", "task_cancelled", "task_skipped", "task_reprioritized", "task_retried",
];

/** Update a task-like record {state, region, worker, attempt, priority, progress} in place. */
export function applyEvent(task, kind, ev) {
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

/** The task id of a raw event (cheap: no JSON parse for events about other tasks). */
export function rawId(data) {
  const m = ID.exec(data);
  return m ? m[1] : null;
}
