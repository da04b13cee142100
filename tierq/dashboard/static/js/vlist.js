// A virtual list: thousands of rows, only the visible ones in the DOM. Rows have one fixed
// height; `renderRow(item, index)` builds a row element (given class "vrow" and positioned
// here). `onNearEnd()` is called when the user scrolls close to the last loaded row.

import { h } from "./dom.js";

export function virtualList(container, { rowHeight = 30, header, renderRow, onNearEnd, overscan = 10 }) {
  let items = [];
  let footer = "";
  const head = header ? header : null;
  const spacer = h("div", { class: "vspacer" });
  const foot = h("div", { class: "vfoot", "data-role": "list-footer" });
  const rows = new Map(); // index -> element
  if (head) container.append(head);
  container.append(spacer, foot);
  const headH = () => (head ? head.offsetHeight : 0);
  let frame = 0;

  function layout() {
    frame = 0;
    const top = container.scrollTop;
    const height = container.clientHeight;
    const offset = headH();
    const first = Math.max(0, Math.floor((top - offset) / rowHeight) - overscan);
    const last = Math.min(items.length - 1, Math.ceil((top + height - offset) / rowHeight) + overscan);
    for (const [i, el] of rows) {
      if (i < first || i > last) {
        el.remove();
        rows.delete(i);
      }
    }
    for (let i = first; i <= last; i++) {
      if (rows.has(i)) continue;
      const el = renderRow(items[i], i);
      el.classList.add("vrow");
      el.style.top = `${offset + i * rowHeight}px`;
      el.dataset.index = String(i);
      rows.set(i, el);
      container.append(el);
    }
    spacer.style.height = `${items.length * rowHeight + 40}px`;
    foot.style.top = `${offset + items.length * rowHeight}px`;
    foot.textContent = footer;
    if (onNearEnd && last >= items.length - overscan * 2) onNearEnd();
  }

  function schedule() {
    if (!frame) frame = requestAnimationFrame(layout);
  }

  container.addEventListener("scroll", schedule, { passive: true });
  const resize = new ResizeObserver(schedule);
  resize.observe(container);

  return {
    get items() {
      return items;
    },
    set(list) {
      items = list;
      for (const el of rows.values()) el.remove();
      rows.clear();
      schedule();
    },
    append(more) {
      items.push(...more);
      schedule();
    },
    /** Re-render one row if it is on screen (its item changed). */
    refresh(index) {
      const el = rows.get(index);
      if (!el) return;
      el.remove();
      rows.delete(index);
      schedule();
    },
    refreshAll() {
      for (const el of rows.values()) el.remove();
      rows.clear();
      schedule();
    },
    footer(text) {
      footer = text;
      foot.textContent = text;
    },
    destroy() {
      resize.disconnect();
      container.removeEventListener("scroll", schedule);
      if (frame) cancelAnimationFrame(frame);
    },
  };
}
