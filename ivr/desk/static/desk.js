// The desk's only script: follow the server's events and refresh the parts of the page
// that changed (server-rendered fragments), without a reload.
(function () {
  "use strict";
  const body = document.body;
  const page = body.dataset.page;
  if (!page || page === "login") return;
  const me = body.dataset.me;

  function refresh(el) {
    if (!el || !el.dataset.fragment) return;
    fetch(el.dataset.fragment, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) el.innerHTML = html; })
      .catch(function () {});
  }

  // many events at once (a stream that resumes, a busy hour) refresh each part once
  const pending = new Set();
  let timer = null;
  function soon(el) {
    if (!el || !el.dataset.fragment) return;
    pending.add(el);
    if (timer !== null) return;
    timer = window.setTimeout(function () {
      timer = null;
      const due = Array.from(pending);
      pending.clear();
      due.forEach(refresh);
    }, 100);
  }

  // from the event this page was made at: what changes while it loads is not lost (the
  // browser resumes from the last event it had, by Last-Event-ID, when the stream drops)
  const seen = body.dataset.seen;
  const events = new EventSource(seen ? "/events?after=" + encodeURIComponent(seen) : "/events");
  events.addEventListener("change", function (e) {
    const ev = JSON.parse(e.data);
    // the router offered a case to me: it pops on my screen
    if (ev.kind === "assigned" && String(ev.agent_id) === me &&
        String(ev.queue_id) !== body.dataset.case) {
      window.location.assign("/cases/" + ev.queue_id);
      return;
    }
    soon(document.getElementById("queue"));
    soon(document.getElementById("board"));
    if (page === "case" && String(ev.queue_id) === body.dataset.case) {
      soon(document.getElementById("status"));
    }
  });
  // calls move through the IVR and waits grow without desk events: refresh on a clock too
  if (page === "supervisor") {
    window.setInterval(function () { refresh(document.getElementById("board")); }, 2000);
  }
  if (page === "queue") {
    window.setInterval(function () { refresh(document.getElementById("queue")); }, 5000);
  }
})();
