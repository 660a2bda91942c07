// Shared by every page: marks that scripts run, and posts to the server with the CSRF token.
document.documentElement.classList.add("js");

export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

// POST JSON (or nothing) and read a JSON reply; never throws on HTTP errors, only on the network.
export async function postJSON(url, body, headers = {}) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: {
      Accept: "application/json",
      "X-CSRF-Token": csrfToken(),
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null; // a proxy's HTML error page, say
  }
  return { ok: response.ok, status: response.status, data };
}

// A random key that works on plain http too (crypto.randomUUID needs a secure context).
export function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(18));
  return btoa(String.fromCharCode(...bytes)).replace(/[+/=]/g, (c) => ({ "+": "-", "/": "_", "=": "" })[c]);
}

// True when a key press belongs to a text field rather than to the page's shortcuts.
export function isTyping(event) {
  const target = event.target;
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable) return true;
  if (target.matches("textarea, select")) return true;
  return target.matches("input") && !target.matches("[type=radio], [type=checkbox], [type=button], [type=submit]");
}

export function plainKey(event) {
  return !event.ctrlKey && !event.metaKey && !event.altKey;
}

// Forms that ask before they act (data-confirm="...").
document.addEventListener("submit", (event) => {
  const message = event.submitter?.dataset.confirm ?? event.target.dataset?.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
