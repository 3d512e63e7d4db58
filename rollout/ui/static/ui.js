// rollout ui: re-render the live part when the server's event stream says something changed,
// and send actions (reason + confirmation) with this page's token. No framework, no build step.
"use strict";
(function () {
  const token = document.querySelector('meta[name="rollout-token"]').content;
  const live = document.getElementById("live");
  const conn = document.getElementById("conn");
  let pendingAction = null; // the ReleaseAction this page created, followed until acknowledged
  let refreshing = false, again = false;

  async function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    try {
      const sep = location.search ? "&" : "?";
      const res = await fetch(location.pathname + location.search + sep + "part=live", { cache: "no-store" });
      if (res.ok) { live.innerHTML = await res.text(); }
      if (pendingAction) { await follow(pendingAction); }
    } catch (e) { /* the stream reconnects; the next change refreshes */ }
    refreshing = false;
    if (again) { again = false; refresh(); }
  }

  function connect() {
    const events = new EventSource("/events");
    events.addEventListener("change", refresh);
    events.onopen = () => { conn.textContent = "● live"; };
    events.onerror = () => { conn.textContent = "○ reconnecting"; };
  }

  const ack = document.getElementById("ack");
  async function follow(name) {
    const res = await fetch("/action/" + encodeURIComponent(name), { cache: "no-store" });
    if (!res.ok) { return; }
    const s = await res.json();
    if (s.state === "Pending") { return; } // still "requested ...; waiting for the controller"
    ack.textContent = name + ": " + s.state + (s.message ? " — " + s.message : "");
    ack.dataset.state = s.state;
    if (s.state !== "Pending" && s.state !== "Running") { pendingAction = null; }
  }

  const form = document.getElementById("act-form");
  if (form) {
    const reason = document.getElementById("reason");
    const box = document.getElementById("confirm");
    let chosen = null;
    form.addEventListener("submit", (e) => e.preventDefault());
    form.querySelectorAll("button.act").forEach((b) => b.addEventListener("click", () => {
      if (!reason.value.trim()) { ack.textContent = "a reason is required"; reason.focus(); return; }
      chosen = b.dataset.action;
      const target = form.dataset.app || form.dataset.region;
      document.getElementById("confirm-text").textContent =
        chosen + " " + target + "? Reason: " + reason.value.trim();
      box.hidden = false;
    }));
    document.getElementById("confirm-no").addEventListener("click", () => { box.hidden = true; chosen = null; });
    document.getElementById("confirm-yes").addEventListener("click", async () => {
      box.hidden = true;
      const body = new URLSearchParams({ token: token, action: chosen, reason: reason.value.trim() });
      if (form.dataset.app) { body.set("app", form.dataset.app); } else { body.set("region", form.dataset.region); }
      ack.textContent = "sending " + chosen + "…";
      try {
        const res = await fetch("/action", { method: "POST", body: body });
        const answer = await res.json();
        if (res.ok) {
          ack.textContent = answer.message; ack.dataset.state = "Pending";
          pendingAction = answer.name; reason.value = "";
        } else {
          ack.textContent = "refused: " + answer.error; ack.dataset.state = "Refused";
        }
      } catch (e) { ack.textContent = "could not send: " + e; }
    });
  }
  connect();
})();
