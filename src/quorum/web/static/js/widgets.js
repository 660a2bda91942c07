// The answer widgets of a labeling form: one controller per question fieldset.
// A controller reads and sets its answer and handles the keys meant for it.
import { initRanking } from "./ranking.js";
import { initSpans } from "./spans.js";
import { plainKey } from "./app.js";

function parseValue(el) {
  try {
    return JSON.parse(el.dataset.value ?? "null");
  } catch {
    return null;
  }
}

function optionController(el, kind, onChange) {
  const inputs = [...el.querySelectorAll("input[type=radio], input[type=checkbox]")];
  const multi = kind === "multi_choice";
  const cast = (v) => (kind === "rating" ? Number(v) : v);
  inputs.forEach((input) => input.addEventListener("change", onChange));
  return {
    advances: !multi,
    read() {
      if (multi) return inputs.filter((i) => i.checked).map((i) => i.value);
      const chosen = inputs.find((i) => i.checked);
      return chosen ? cast(chosen.value) : undefined;
    },
    set(value) {
      const wanted = multi ? (Array.isArray(value) ? value.map(String) : []) : [String(value)];
      inputs.forEach((i) => (i.checked = value != null && wanted.includes(i.value)));
    },
    key(event) {
      if (!plainKey(event) || event.key.length !== 1) return false;
      const input = inputs.find((i) => i.dataset.key && i.dataset.key.toLowerCase() === event.key.toLowerCase());
      if (!input) return false;
      input.checked = multi ? !input.checked : true;
      input.focus({ preventScroll: true });
      onChange();
      return true;
    },
    focus() {
      (inputs.find((i) => i.checked) ?? inputs[0])?.focus();
    },
  };
}

function textController(el, onChange) {
  const area = el.querySelector("textarea");
  const output = el.querySelector(".char-count output");
  const min = Number(el.dataset.minChars ?? 0);
  const required = el.dataset.required === "true";
  const count = () => {
    // Python's len(value.strip()): code points, not UTF-16 units.
    const n = [...area.value.trim()].length;
    output.textContent = String(n);
    el.classList.toggle("too-short", n < min);
  };
  area.addEventListener("input", () => {
    count();
    onChange();
  });
  count();
  return {
    advances: false,
    read() {
      return area.value === "" && !required ? undefined : area.value;
    },
    set(value) {
      area.value = typeof value === "string" ? value : "";
      count();
    },
    key() {
      return false;
    },
    focus() {
      area.focus();
    },
  };
}

function controllerFor(el, onChange) {
  const kind = el.dataset.kind;
  if (kind === "text") return textController(el, onChange);
  if (kind === "ranking") return initRanking(el, onChange);
  if (kind === "spans") return initSpans(el, onChange);
  return optionController(el, kind, onChange);
}

export function initQuestions(form, { onChange = () => {} } = {}) {
  const controllers = [...form.querySelectorAll("fieldset.question")].map((el) => {
    const controller = controllerFor(el, onChange);
    Object.assign(controller, { el, name: el.dataset.name, required: el.dataset.required === "true" });
    const initial = parseValue(el);
    if (initial !== null) controller.set(initial);
    return controller;
  });
  let active = 0;
  const activate = (index) => {
    active = index;
    controllers.forEach((c, i) => c.el.classList.toggle("active", i === index && controllers.length > 1));
  };
  controllers.forEach((c, i) => c.el.addEventListener("focusin", () => activate(i)));
  activate(0);

  return {
    controllers,
    read() {
      const answers = {};
      for (const c of controllers) {
        const value = c.read();
        if (value !== undefined) answers[c.name] = value;
      }
      return answers;
    },
    set(answers) {
      for (const c of controllers) if (answers && c.name in answers) c.set(answers[c.name]);
    },
    // Required questions still unanswered: caught here so the annotator needs no round trip.
    missing() {
      return controllers.filter((c) => c.required && (c.read() === undefined || c.read() === ""));
    },
    showProblems(details) {
      controllers.forEach((c) => {
        const p = c.el.querySelector(".problem");
        const mine = details.filter((d) => d.field === `answers.${c.name}` || d.field?.startsWith(`answers.${c.name}.`));
        p.textContent = mine.map((d) => d.message).join("; ");
        p.hidden = mine.length === 0;
        c.el.classList.toggle("has-problem", mine.length > 0);
      });
      const first = controllers.find((c) => c.el.classList.contains("has-problem"));
      if (first) first.focus();
      return Boolean(first);
    },
    key(event) {
      const c = controllers[active];
      if (!c || !c.key(event)) return false;
      if (c.advances && controllers[active + 1]) controllers[active + 1].focus();
      return true;
    },
    focusFirst() {
      controllers[0]?.focus();
    },
  };
}
