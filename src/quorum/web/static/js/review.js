// Review keys: A accept, R reject (write the comment, then Ctrl+Enter), C correct, J later.
import { isTyping, plainKey } from "./app.js";
import { initQuestions } from "./widgets.js";

const decision = document.getElementById("decision-form");
const correction = document.getElementById("correction");
const correctionForm = document.getElementById("correction-form");
const comment = document.getElementById("comment");
let questions = null;

function openCorrection() {
  if (!correction) return;
  correction.hidden = false;
  document.getElementById("correct-button")?.setAttribute("aria-expanded", "true");
  questions ??= initQuestions(correctionForm);
  questions.focusFirst();
}

if (correction) {
  correction.hidden = true;
  document.getElementById("correct-button").addEventListener("click", openCorrection);
  correctionForm.addEventListener("submit", () => {
    // Widgets (spans, ranking) hold their answer in script state: send it as JSON.
    correctionForm.elements.answers_json.value = JSON.stringify((questions ??= initQuestions(correctionForm)).read());
  });
}

document.addEventListener("keydown", (event) => {
  if (!decision) return;
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    if (correction && !correction.hidden && correction.contains(document.activeElement)) correctionForm.requestSubmit();
    else if (document.activeElement === comment) decision.requestSubmit(document.getElementById("reject-button"));
    return;
  }
  if (isTyping(event)) {
    if (event.key === "Escape") event.target.blur();
    return;
  }
  if (correction && !correction.hidden && correction.contains(document.activeElement)) {
    // Inside the correction, keys answer its questions; Esc leaves it.
    if (event.key === "Escape") document.activeElement.blur();
    else if (questions.key(event)) event.preventDefault();
    return;
  }
  if (!plainKey(event)) return;
  const key = event.key.toLowerCase();
  if (key === "a") decision.requestSubmit(document.getElementById("accept-button"));
  else if (key === "r") comment.focus();
  else if (key === "c") openCorrection();
  else if (key === "j") document.getElementById("later-link").click();
  else return;
  event.preventDefault();
});
