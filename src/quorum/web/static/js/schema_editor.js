// The schema editor: validates as you type (the server runs the domain's own checks) and
// previews the labeling page, whose keys work here as they will for annotators.
import { isTyping, postJSON } from "./app.js";
import { initQuestions } from "./widgets.js";

const form = document.getElementById("project-form");
const schema = document.getElementById("schema");
const policy = document.getElementById("policy");
const preview = document.getElementById("preview");
const examples = JSON.parse(form.dataset.examples);
let questions = null;
let timer = null;
let sequence = 0;

function show(element, result, what) {
  element.classList.toggle("ok", result.ok);
  element.classList.toggle("bad", !result.ok);
  element.textContent = result.ok
    ? `✓ ${what} is valid.`
    : result.problems
        .map((p) => `${p.line ? `line ${p.line}: ` : ""}${p.field}: ${p.message}`)
        .join(" · ");
}

async function check() {
  const mine = ++sequence;
  let reply;
  try {
    reply = await postJSON(form.dataset.checkUrl, { schema: schema.value, policy: policy.value });
  } catch {
    return; // offline: the server checks again on create
  }
  if (mine !== sequence || !reply.ok) return; // a newer check is on its way
  show(document.getElementById("schema-status"), reply.data.schema, "The schema");
  show(document.getElementById("policy-status"), reply.data.policy, "The policy");
  if (reply.data.preview !== null) {
    preview.innerHTML = reply.data.preview;
    questions = initQuestions(preview);
  }
}

function soon() {
  clearTimeout(timer);
  timer = setTimeout(check, 250);
}

schema.addEventListener("input", soon);
policy.addEventListener("input", soon);
document.getElementById("example").addEventListener("change", (event) => {
  const chosen = examples[event.target.value];
  if (!chosen) return;
  schema.value = JSON.stringify(chosen, null, 2);
  check();
});
preview.addEventListener("keydown", (event) => {
  if (!isTyping(event) && questions?.key(event)) event.preventDefault();
});
check();
