// Ranking: order the items best first, by keyboard or by dragging. The answer lists the
// items' original indices in their current order.
import { plainKey } from "./app.js";

export function initRanking(fieldset, onChange) {
  const list = fieldset.querySelector("ol.ranking");
  const status = document.createElement("p");
  status.className = "visually-hidden";
  status.setAttribute("aria-live", "polite");
  list.after(status);
  const items = () => [...list.children];
  let dragged = null;

  const focusItem = (li) => {
    items().forEach((other) => other.setAttribute("tabindex", other === li ? "0" : "-1"));
    li.focus();
  };
  const current = () => items().find((li) => li.getAttribute("tabindex") === "0") ?? items()[0];

  const moveTo = (li, position) => {
    const all = items();
    const to = Math.max(0, Math.min(all.length - 1, position));
    if (all.indexOf(li) === to) return;
    li.remove();
    list.insertBefore(li, items()[to] ?? null);
    focusItem(li);
    status.textContent = `Moved to place ${to + 1} of ${all.length}.`;
    onChange();
  };

  items().forEach((li, i) => {
    li.setAttribute("tabindex", i === 0 ? "0" : "-1");
    li.setAttribute("draggable", "true");
    li.setAttribute("aria-roledescription", "sortable item");
    li.addEventListener("dragstart", (event) => {
      dragged = li;
      li.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", li.dataset.index);
    });
    li.addEventListener("dragend", () => {
      li.classList.remove("dragging");
      dragged = null;
    });
    li.addEventListener("dragover", (event) => {
      if (!dragged || dragged === li) return;
      event.preventDefault();
      const box = li.getBoundingClientRect();
      const after = event.clientY > box.top + box.height / 2;
      list.insertBefore(dragged, after ? li.nextSibling : li);
    });
    li.addEventListener("drop", (event) => {
      event.preventDefault();
      if (dragged) focusItem(dragged);
      onChange();
    });
    li.addEventListener("click", () => focusItem(li));
  });

  list.addEventListener("keydown", (event) => {
    const li = event.target.closest("li");
    if (!li || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) return;
    event.preventDefault();
    const all = items();
    const step = event.key === "ArrowUp" ? -1 : 1;
    if (event.shiftKey || event.altKey) moveTo(li, all.indexOf(li) + step);
    else focusItem(all[Math.max(0, Math.min(all.length - 1, all.indexOf(li) + step))]);
  });

  return {
    advances: false,
    read() {
      return items().map((li) => Number(li.dataset.index));
    },
    set(order) {
      if (!Array.isArray(order)) return;
      const byIndex = new Map(items().map((li) => [Number(li.dataset.index), li]));
      order.forEach((index) => byIndex.has(index) && list.append(byIndex.get(index)));
    },
    key(event) {
      // A digit puts the chosen item at that place.
      if (!plainKey(event) || !/^[1-9]$/.test(event.key)) return false;
      moveTo(current(), Number(event.key) - 1);
      return true;
    },
    focus() {
      focusItem(current());
    },
  };
}
