// jobsbroker console: live updates and small conveniences. Every page
// works without this script; with it, the page's live parts follow the
// broker through a Server-Sent Events stream on the page's own URL.
(function () {
  "use strict";

  // Replaces a live part, keeping the keyboard focus where it was.
  function swap(el, html) {
    var active = document.activeElement, selector = null;
    if (active && active !== document.body && el.contains(active)) {
      if (active.id) {
        selector = "#" + CSS.escape(active.id);
      } else if (active.getAttribute("href")) {
        selector = '[href="' + CSS.escape(active.getAttribute("href")) + '"]';
      }
    }
    el.innerHTML = html;
    if (selector) {
      var again = el.querySelector(selector);
      if (again) again.focus({ preventScroll: true });
    }
  }

  function live() {
    if (!document.body.hasAttribute("data-live") || !window.EventSource) return;
    var state = document.getElementById("live-state");
    var url = new URL(window.location.href);
    url.searchParams.delete("done");
    var es = new EventSource(url.toString());
    es.addEventListener("open", function () {
      if (state) { state.textContent = "Live"; state.setAttribute("data-state", "live"); }
    });
    es.addEventListener("error", function () {
      if (!state) return;
      if (es.readyState === EventSource.CLOSED) {
        // The server refused the stream (logged out, too many pages open).
        state.textContent = "Live updates are off; reload the page to try again.";
        state.setAttribute("data-state", "off");
      } else {
        state.textContent = "Reconnecting…";
        state.setAttribute("data-state", "reconnecting");
      }
    });
    es.addEventListener("update", function (ev) {
      var parts = JSON.parse(ev.data);
      Object.keys(parts).forEach(function (id) {
        var el = document.getElementById(id);
        if (el) swap(el, parts[id]);
      });
      document.body.setAttribute("data-updates", String(Number(document.body.getAttribute("data-updates") || 0) + 1));
    });
    es.addEventListener("gone", function () {
      es.close();
      if (state) { state.textContent = "This no longer exists. Go back to the jobs."; state.setAttribute("data-state", "gone"); }
    });
    window.addEventListener("pagehide", function () { es.close(); });
  }

  // Suggests things and groups for the create form's targets.
  function completion() {
    var input = document.getElementById("target-search");
    var list = document.getElementById("target-options");
    var add = document.getElementById("target-add");
    var targets = document.getElementById("targets");
    if (!input || !list || !add || !targets) return;
    var timer = null, asked = "";
    function suggest() {
      var q = input.value.trim();
      if (q === asked) return;
      asked = q;
      fetch("/console/complete?q=" + encodeURIComponent(q), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : []; })
        .then(function (names) {
          list.innerHTML = "";
          names.forEach(function (n) {
            var o = document.createElement("option");
            o.value = n;
            list.appendChild(o);
          });
        })
        .catch(function () {});
    }
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(suggest, 150);
    });
    input.addEventListener("focus", suggest);
    function addTarget() {
      var v = input.value.trim();
      if (!v) return;
      var text = targets.value.replace(/\s+$/, "");
      targets.value = (text ? text + "\n" : "") + v;
      input.value = "";
      input.focus();
    }
    add.addEventListener("click", addTarget);
    input.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter") { ev.preventDefault(); addTarget(); }
    });
  }

  function focusErrors() {
    var summary = document.getElementById("error-summary");
    if (summary) summary.focus();
  }

  document.addEventListener("DOMContentLoaded", function () {
    live();
    completion();
    focusErrors();
  });
})();
