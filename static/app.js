// Behaviour the pages need beyond htmx. Listeners are delegated from the
// document, so buttons that arrive later over htmx or the event stream work
// too. No handler reads user data as code.
(function () {
  "use strict";

  function flash(message) {
    var box = document.getElementById("flash");
    if (!box) return;
    var p = document.createElement("p");
    p.className = "error";
    p.textContent = message;
    box.replaceChildren(p);
  }

  document.addEventListener("click", function (ev) {
    var copy = ev.target.closest("button[data-copy]");
    if (copy) {
      var text = copy.getAttribute("data-copy");
      if (!navigator.clipboard) {
        copy.textContent = "Select the URL to copy it";
        return;
      }
      navigator.clipboard.writeText(text).then(function () {
        copy.textContent = "Copied";
        copy.classList.add("copied");
        setTimeout(function () { copy.textContent = "Copy"; copy.classList.remove("copied"); }, 2000);
      }, function () {
        copy.textContent = "Copy failed; select the URL";
      });
      return;
    }
    var dismiss = ev.target.closest("button[data-dismiss]");
    if (dismiss) {
      var target = document.getElementById(dismiss.getAttribute("data-dismiss"));
      if (target) target.remove();
    }
  });

  // A message on any onboarding stream may change the node's room; the
  // capacity readout listens for this event. Bursts are coalesced.
  var pending = null;
  document.addEventListener("htmx:sseMessage", function () {
    if (pending) return;
    pending = setTimeout(function () {
      pending = null;
      document.body.dispatchEvent(new CustomEvent("deployer:changed"));
    }, 300);
  });

  // The start button stays in place while the capacity readout refreshes,
  // so that a click is never lost to a swap; the readout says whether the
  // node can take a tester, and the button follows.
  function followCapacity() {
    var readout = document.getElementById("capacity");
    var button = document.getElementById("start-button");
    if (!readout || !button) return;
    var canStart = readout.getAttribute("data-can-start") === "true";
    button.disabled = !canStart;
    button.title = canStart ? "" : readout.getAttribute("data-blocked-reason");
  }
  document.addEventListener("htmx:afterSwap", function (ev) {
    if (ev.detail.target && ev.detail.target.id === "capacity") followCapacity();
  });

  // After a start, clear the tester's fields for the next one; the node and
  // the new form key stay.
  document.addEventListener("htmx:afterRequest", function (ev) {
    // htmx repeats the event on the closest element still in the page when
    // a request's own element was swapped out, as the capacity readout's
    // refresh is, so the request's element is what tells a start apart.
    var config = ev.detail.requestConfig;
    var form = config && config.elt;
    if (!form || form.id !== "start-form") return;
    followCapacity();
    // htmx is set to treat no status as an error, because the deployer's
    // error responses are messages to swap in, so the status decides.
    var status = ev.detail.xhr ? ev.detail.xhr.status : 0;
    if (status < 200 || status >= 300) return;
    ["username", "full_name", "email"].forEach(function (name) {
      var input = form.elements.namedItem(name);
      if (input) input.value = "";
    });
    var existing = form.elements.namedItem("account");
    if (existing) existing.checked = false;
  });

  document.addEventListener("htmx:sendError", function () {
    flash("The deployer did not answer. Check that it is running, then try again.");
  });
  document.addEventListener("htmx:beforeRequest", function (ev) {
    var box = document.getElementById("flash");
    if (box) box.replaceChildren();
    // Each action empties the element its errors go to, so that a later
    // success does not appear beside an old error. Refreshes, which are
    // GETs and inherit the same header from the form around them, leave it.
    var config = ev.detail.requestConfig;
    var headers = config && config.verb !== "get" && config.headers;
    var errorTarget = headers && headers["X-Error-Target"];
    var errors = errorTarget && document.querySelector(errorTarget);
    if (errors) errors.replaceChildren();
    // A form's new outcome replaces the notice of its last one, also when
    // the outcome is an error that goes elsewhere in the panel.
    var panel = ev.target.closest && ev.target.closest("#sim-panel");
    if (panel && ev.detail.requestConfig && ev.detail.requestConfig.verb === "post") {
      panel.querySelectorAll(".notice").forEach(function (n) { n.remove(); });
    }
  });
})();
