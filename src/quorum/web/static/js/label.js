// The labeling workbench: keys, submit with retries under one Idempotency-Key, skip, the
// lease timer, and the next task swapped in without reloading the page.
import { isTyping, plainKey, postJSON } from "./app.js";
import { initQuestions } from "./widgets.js";

const workbench = document.getElementById("workbench");
const slot = document.getElementById("task-slot");
const banner = document.getElementById("banner");
const timer = document.getElementById("lease-timer");
const doneCount = document.getElementById("done-count");
const instructions = document.getElementById("instructions");
const keys = document.getElementById("keys");
const RETRIES = 4;

let task = null; // the task on screen: its form, questions, key and timing
let labelled = 0;
let loading = false;
let ticking = null;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const draftKey = (id) => `quorum:draft:${id}`;

function say(message, kind = "info") {
  banner.hidden = !message;
  banner.textContent = message ?? "";
  banner.className = `banner banner-${kind}`;
}

function saveDraft() {
  if (!task) return;
  const draft = { answers: task.questions.read(), key: task.key, duration: task.duration };
  try {
    sessionStorage.setItem(draftKey(task.id), JSON.stringify(draft));
  } catch {
    // storage full or disabled: the answer is still on screen
  }
}

function restoreDraft() {
  let draft = null;
  try {
    draft = JSON.parse(sessionStorage.getItem(draftKey(task.id)) ?? "null");
  } catch {
    draft = null;
  }
  if (!draft) return;
  task.questions.set(draft.answers);
  task.key = draft.key ?? task.key; // a retry after a reload must reuse the first key
  task.duration = draft.duration ?? null;
}

function clearDraft(id) {
  try {
    sessionStorage.removeItem(draftKey(id));
  } catch {
    // nothing to clear
  }
}

function mount() {
  clearInterval(ticking);
  const form = slot.querySelector("#answer-form");
  if (!form) {
    task = null;
    timer.hidden = true;
    slot.querySelector("#next-button")?.focus();
    return;
  }
  task = {
    form,
    id: form.dataset.assignment,
    submitUrl: form.dataset.submitUrl,
    skipUrl: form.dataset.skipUrl,
    key: form.querySelector("[name=idempotency_key]").value,
    duration: null,
    shownAt: performance.now(),
    deadline: performance.now() + Number(form.dataset.secondsLeft) * 1000,
    busy: false,
    expired: false,
  };
  task.questions = initQuestions(form, { onChange: saveDraft });
  restoreDraft();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (event.submitter?.id === "skip-button") skip();
    else submit();
  });
  tick();
  ticking = setInterval(tick, 1000);
  task.questions.focusFirst();
}

function tick() {
  if (!task) return;
  const left = Math.max(0, Math.round((task.deadline - performance.now()) / 1000));
  timer.hidden = false;
  timer.classList.toggle("warn", left < 60);
  if (left > 0) {
    timer.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")} left`;
    return;
  }
  timer.textContent = "lease expired";
  if (!task.expired) {
    task.expired = true;
    say(
      "Your time on this task ran out. Your answer is still here: submit it (Ctrl+Enter) and it is " +
        "saved if no one else has taken the task, or press N for another task.",
      "warn",
    );
  }
}

async function loadNext() {
  if (loading) return;
  loading = true;
  try {
    const reply = await postJSON(workbench.dataset.nextUrl);
    if (!reply.ok) {
      say(`Could not load the next task (${reply.data?.error?.message ?? `status ${reply.status}`}). Press N to try again.`, "error");
      return;
    }
    slot.innerHTML = reply.data.html;
    if (reply.data.url) history.replaceState(null, "", reply.data.url);
    mount();
  } catch {
    say("Could not reach the server for the next task. Press N to try again.", "error");
  } finally {
    loading = false;
  }
}

async function submit() {
  if (!task || task.busy) return;
  const missing = task.questions.missing();
  if (missing.length) {
    task.questions.showProblems(missing.map((c) => ({ field: `answers.${c.name}`, message: "answer this question" })));
    say("Some questions still need an answer.", "warn");
    return;
  }
  const current = task;
  current.duration ??= Math.round(performance.now() - current.shownAt); // frozen for retries
  const body = { answers: current.questions.read(), duration_ms: current.duration };
  saveDraft();
  current.busy = true;
  current.form.classList.add("saving");
  try {
    await deliver(current, body);
  } finally {
    current.busy = false;
    current.form.classList.remove("saving");
  }
}

// Post the answer until the server has it, reusing one Idempotency-Key so a retry of a
// request that did arrive returns the first annotation instead of labelling twice.
async function deliver(current, body) {
  for (let attempt = 0; ; attempt++) {
    let reply;
    try {
      reply = await postJSON(current.submitUrl, body, { "Idempotency-Key": current.key });
    } catch {
      reply = { ok: false, status: 0, data: null };
    }
    const error = reply.data?.error;
    if (reply.ok || (reply.status === 422 && error?.details?.some((d) => d.field === "Idempotency-Key"))) {
      clearDraft(current.id);
      labelled += 1;
      doneCount.textContent = `${labelled} labelled`;
      say(reply.ok ? null : "That task was already saved with your earlier answer.", "info");
      await loadNext();
      return;
    }
    if (reply.status === 422) {
      current.questions.showProblems(error?.details ?? []);
      say(`Not saved: ${error?.message ?? "the answer is invalid"}. Fix it and press Ctrl+Enter.`, "error");
      return;
    }
    if (reply.status === 409 || reply.status === 404) {
      // The lease is gone (taken, reserved, freed by a pause): its countdown means nothing now.
      clearInterval(ticking);
      timer.hidden = true;
      say(`Not saved: ${error?.message ?? "the task is no longer yours"}. Your answer is still on screen; press N for another task.`, "error");
      return;
    }
    if (reply.status === 401 || reply.status === 403) {
      say("Not saved: you are signed out. Sign in again in another tab, come back and press Ctrl+Enter; your answer is kept here.", "error");
      return;
    }
    if (attempt + 1 >= RETRIES) {
      say("Not saved: the server cannot be reached. Your answer is kept here; press Ctrl+Enter to try again.", "error");
      return;
    }
    say(`Saving failed; trying again (${attempt + 1} of ${RETRIES - 1})…`, "warn");
    await sleep(500 * 2 ** attempt);
  }
}

async function skip() {
  if (!task || task.busy) return;
  const current = task;
  current.busy = true;
  try {
    const reply = await postJSON(current.skipUrl);
    if (!reply.ok) {
      say(`Could not skip: ${reply.data?.error?.message ?? `status ${reply.status}`}.`, "error");
      return;
    }
    clearDraft(current.id);
    say(null);
    await loadNext();
  } catch {
    say("Could not reach the server to skip. Try again.", "error");
  } finally {
    current.busy = false;
  }
}

function toggleKeys() {
  keys.classList.toggle("open");
}

document.addEventListener("keydown", (event) => {
  if (instructions.open) return; // Esc closes the dialog natively
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    submit();
    return;
  }
  if (isTyping(event)) {
    if (event.key === "Escape") event.target.blur();
    return;
  }
  if (event.key === "S" && event.shiftKey && !event.ctrlKey && !event.metaKey && !event.altKey) {
    event.preventDefault();
    skip();
    return;
  }
  if (!plainKey(event)) return;
  if (event.key === "i" || event.key === "I") {
    event.preventDefault();
    instructions.showModal();
    return;
  }
  if (event.key === "?") {
    toggleKeys();
    return;
  }
  if ((event.key === "n" || event.key === "N") && (!task || !banner.hidden)) {
    event.preventDefault();
    say(null);
    loadNext();
    return;
  }
  if (task && task.questions.key(event)) event.preventDefault();
});

document.getElementById("show-instructions").addEventListener("click", () => instructions.showModal());
document.getElementById("show-keys").addEventListener("click", toggleKeys);
slot.addEventListener("submit", (event) => {
  // "Start labeling" / "Check again" without leaving the page.
  if (event.target.closest("#no-task")) {
    event.preventDefault();
    loadNext();
  }
});

mount();
if (!task) loadNext();
