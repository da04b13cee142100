// The login page: trade an API token for a session cookie (HttpOnly, SameSite=Strict).

const form = document.getElementById("login");
const error = document.getElementById("login-error");

async function current() {
  const r = await fetch("/v1/session", { credentials: "same-origin", cache: "no-store" });
  const s = await r.json();
  if (s.open || s.authenticated) location.replace("/");
}

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  error.hidden = true;
  const token = form.elements.token.value.trim();
  const r = await fetch("/v1/session", {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify({ token }),
  });
  if (r.status === 201) {
    form.reset();
    location.replace("/");
    return;
  }
  let detail = `HTTP ${r.status}`;
  try {
    detail = (await r.json()).detail || detail;
  } catch {
    // not JSON: keep the status
  }
  error.textContent = `Login refused: ${detail}`;
  error.hidden = false;
});

current();
