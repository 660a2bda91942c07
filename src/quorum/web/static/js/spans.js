// Spans: mark ranges of a text with labels. Offsets are Unicode code points, as Python counts
// them; JavaScript strings count UTF-16 units, so every DOM position is converted (an emoji is
// one code point but two UTF-16 units). The caret stops only between grapheme clusters.
import { plainKey } from "./app.js";

const graphemes = "Segmenter" in Intl ? new Intl.Segmenter(undefined, { granularity: "grapheme" }) : null;
const words = "Segmenter" in Intl ? new Intl.Segmenter(undefined, { granularity: "word" }) : null;

export function codePointIndex(text) {
  // starts[i] = the UTF-16 index where code point i begins; starts[n] = text.length.
  const starts = [0];
  for (const ch of text) starts.push(starts[starts.length - 1] + ch.length);
  return starts;
}

function toCodePoint(starts, utf16) {
  // The code point at or before a UTF-16 index (a position inside a surrogate pair snaps back).
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid] <= utf16) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function stopsOf(segmenter, text, starts, keep = () => true) {
  const stops = new Set([0, starts.length - 1]);
  if (segmenter) {
    for (const s of segmenter.segment(text)) if (keep(s)) stops.add(toCodePoint(starts, s.index));
  } else {
    for (let i = 0; i < starts.length; i++) stops.add(i);
  }
  return [...stops].sort((a, b) => a - b);
}

export function initSpans(fieldset, onChange) {
  const box = fieldset.querySelector(".span-text");
  const list = fieldset.querySelector(".span-list");
  const status = fieldset.querySelector(".span-status");
  const buttons = [...fieldset.querySelectorAll(".span-label")];
  const labels = buttons.map((b) => b.dataset.label);
  const text = box.dataset.text;
  const chars = Array.from(text);
  const starts = codePointIndex(text);
  const n = chars.length;
  const caretStops = stopsOf(graphemes, text, starts);
  const wordStops = stopsOf(words, text, starts, (s) => s.isWordLike);
  let spans = [];
  let anchor = null;
  let caret = 0;
  let focused = false;

  const selection = () =>
    anchor === null || anchor === caret ? null : { start: Math.min(anchor, caret), end: Math.max(anchor, caret) };
  const say = (message) => (status.textContent = message);
  const excerpt = (s) => chars.slice(s.start, s.end).join("");
  const color = (label) => labels.indexOf(label) % 9;

  // The text with its marks, selection and caret; the list only changes with the spans, so
  // moving the caret or the focus never rebuilds (and unfocuses) the list's buttons.
  function renderText() {
    const sel = selection();
    const cuts = new Set([0, n, caret]);
    for (const s of spans) cuts.add(s.start).add(s.end);
    if (sel) cuts.add(sel.start).add(sel.end);
    const sorted = [...cuts].sort((a, b) => a - b);
    const parts = document.createDocumentFragment();
    const caretMark = () => {
      const mark = document.createElement("span");
      mark.className = "caret";
      mark.setAttribute("aria-hidden", "true");
      return mark;
    };
    for (let k = 0; k + 1 < sorted.length; k++) {
      const [a, b] = [sorted[k], sorted[k + 1]];
      if (focused && a === caret) parts.append(caretMark());
      const seg = document.createElement("span");
      seg.dataset.s = String(a);
      seg.textContent = chars.slice(a, b).join("");
      const covering = spans.filter((s) => s.start <= a && s.end >= b);
      if (covering.length) {
        seg.classList.add("marked", `tint-${color(covering[0].label)}`);
        seg.style.boxShadow = covering
          .map((s, i) => `inset 0 -${3 * (i + 1)}px 0 var(--label-${color(s.label)})`)
          .join(", ");
        seg.title = covering.map((s) => s.label).join(", ");
      }
      if (sel && sel.start <= a && sel.end >= b) seg.classList.add("selected");
      parts.append(seg);
    }
    if (focused && caret === n) parts.append(caretMark());
    box.replaceChildren(parts);
  }

  function render() {
    renderText();
    renderList();
  }

  function renderList() {
    list.replaceChildren(
      ...spans.map((s, i) => {
        const li = document.createElement("li");
        const chip = document.createElement("span");
        chip.className = `chip tint-${color(s.label)}`;
        chip.textContent = s.label;
        const quote = document.createElement("q");
        quote.dir = "auto";
        quote.textContent = excerpt(s);
        const where = document.createElement("small");
        where.textContent = ` ${s.start}–${s.end} `;
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "btn btn-small btn-quiet";
        remove.textContent = "Remove";
        remove.setAttribute("aria-label", `Remove ${s.label} “${excerpt(s)}”`);
        remove.addEventListener("click", () => {
          spans.splice(i, 1);
          say(`Removed ${s.label} “${excerpt(s)}”.`);
          render();
          onChange();
          (list.querySelectorAll("button")[Math.min(i, spans.length - 1)] ?? box).focus();
        });
        li.append(chip, " ", quote, where, remove);
        return li;
      }),
    );
  }

  // A DOM position (text node and UTF-16 offset, or element and child index) in code points.
  function pointToCodePoint(node, offset) {
    if (node.nodeType === Node.TEXT_NODE) {
      const seg = node.parentElement?.closest("[data-s]");
      if (!seg || !box.contains(seg)) return null;
      const segStart = Number(seg.dataset.s);
      return toCodePoint(starts, starts[segStart] + offset);
    }
    if (node !== box && !box.contains(node)) return null;
    const children = [...node.childNodes];
    for (let i = offset; i < children.length; i++) {
      const seg = children[i].nodeType === Node.ELEMENT_NODE ? children[i].closest("[data-s]") ?? children[i].querySelector?.("[data-s]") : null;
      if (seg) return Number(seg.dataset.s);
    }
    return node === box ? n : null;
  }

  const snapDown = (i) => caretStops.filter((s) => s <= i).pop() ?? 0;
  const snapUp = (i) => caretStops.find((s) => s >= i) ?? n;
  const isSpace = (i) => /\s/u.test(chars[i] ?? "");

  function trimmed(sel) {
    let { start, end } = sel;
    while (start < end && isSpace(start)) start++;
    while (end > start && isSpace(end - 1)) end--;
    return start < end ? { start, end } : null;
  }

  box.addEventListener("mouseup", () => {
    const dom = window.getSelection();
    if (!dom || dom.rangeCount === 0 || !box.contains(dom.anchorNode) || !box.contains(dom.focusNode)) return;
    const a = pointToCodePoint(dom.anchorNode, dom.anchorOffset);
    const f = pointToCodePoint(dom.focusNode, dom.focusOffset);
    dom.removeAllRanges();
    if (a === null || f === null) return;
    if (a === f) {
      anchor = null;
      caret = snapDown(a);
    } else {
      anchor = a < f ? snapDown(a) : snapUp(a);
      caret = a < f ? snapUp(f) : snapDown(f);
    }
    focused = true;
    box.focus({ preventScroll: true });
    renderText();
  });

  box.addEventListener("focus", () => {
    focused = true;
    renderText();
  });
  box.addEventListener("blur", () => {
    focused = false;
    renderText();
  });

  box.addEventListener("keydown", (event) => {
    const rtl = getComputedStyle(box).direction === "rtl";
    let to = null;
    if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
      const forward = (event.key === "ArrowRight") !== rtl; // arrows follow the text's direction
      const stops = event.ctrlKey || event.altKey ? wordStops : caretStops;
      to = forward ? stops.find((s) => s > caret) ?? n : stops.filter((s) => s < caret).pop() ?? 0;
      if (!event.shiftKey && selection()) to = forward ? selection().end : selection().start;
    } else if (event.key === "Home") to = 0;
    else if (event.key === "End") to = n;
    else if (event.key === "Escape" && selection()) {
      anchor = null;
      event.preventDefault();
      event.stopPropagation();
      renderText();
      return;
    } else if (event.key === "Delete" || event.key === "Backspace") {
      const i = spans.findLastIndex((s) => s.start <= caret && caret <= s.end);
      if (i >= 0) {
        const [gone] = spans.splice(i, 1);
        say(`Removed ${gone.label} “${excerpt(gone)}”.`);
        render();
        onChange();
      }
      event.preventDefault();
      return;
    }
    if (to === null) return;
    event.preventDefault();
    if (event.shiftKey) anchor ??= caret;
    else anchor = null;
    caret = to;
    renderText();
  });

  function mark(label) {
    const sel = selection() && trimmed(selection());
    if (!sel) {
      say("Select some text first, then press a label's key.");
      return;
    }
    const clash = spans.find((s) => s.label === label && s.start < sel.end && sel.start < s.end);
    if (clash) {
      say(`Not marked: it overlaps the ${label} “${excerpt(clash)}”; spans with the same label may not overlap.`);
      return;
    }
    spans.push({ start: sel.start, end: sel.end, label });
    spans.sort((x, y) => x.start - y.start || x.end - y.end || x.label.localeCompare(y.label));
    anchor = null;
    caret = sel.end;
    say(`Marked “${excerpt(sel)}” as ${label}.`);
    render();
    onChange();
  }

  buttons.forEach((button) =>
    button.addEventListener("mousedown", (event) => event.preventDefault()), // keep the selection
  );
  buttons.forEach((button) => button.addEventListener("click", () => mark(button.dataset.label)));
  render();

  return {
    advances: false,
    read() {
      return spans.map(({ start, end, label }) => ({ start, end, label }));
    },
    set(value) {
      spans = Array.isArray(value)
        ? value.filter((s) => labels.includes(s.label) && 0 <= s.start && s.start < s.end && s.end <= n)
        : [];
      render();
    },
    key(event) {
      if (!plainKey(event) || !/^[1-9]$/.test(event.key)) return false;
      const label = labels[Number(event.key) - 1];
      if (label === undefined) return false;
      mark(label);
      return true;
    },
    focus() {
      box.focus();
    },
  };
}
