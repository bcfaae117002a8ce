// Keyboard-first labelling page. No inline script (CSP script-src 'self'): page data comes
// from the JSON script tag #page-data, the CSRF token from <meta name="csrf-token">.
(function () {
  "use strict";

  var dataEl = document.getElementById("page-data");
  var page = dataEl ? JSON.parse(dataEl.textContent) : {};
  var helpEl = document.getElementById("help");
  var helpButton = document.getElementById("help-button");

  function toggleHelp(show) {
    if (!helpEl) return;
    var open = show === undefined ? helpEl.hidden : show;
    helpEl.hidden = !open;
  }
  if (helpButton) helpButton.addEventListener("click", function () { toggleHelp(); });
  var helpClose = document.getElementById("help-close");
  if (helpClose) helpClose.addEventListener("click", function () { toggleHelp(false); });

  // a long traceback ends with the error that matters: show its end, the frames scroll above
  document.querySelectorAll(".markdown pre").forEach(function (pre) {
    if (pre.scrollHeight > pre.clientHeight && /Traceback \(most recent call last\)/.test(pre.textContent)) {
      pre.scrollTop = pre.scrollHeight;
    }
  });

  var panel = document.getElementById("panel");
  if (!panel || page.pos === null || page.pos === undefined) {
    // the done page: only help and going back
    document.addEventListener("keydown", function (ev) {
      if (ev.key === "?") { toggleHelp(); ev.preventDefault(); }
      else if (ev.key === "Escape") { toggleHelp(false); }
      else if ((ev.key === "ArrowLeft" || ev.key === "p") && page.prev) { window.location.assign(page.prev); }
    });
    return;
  }

  var token = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var subtypes = page.subtypes || {};
  var sel = { stage: "", symptom: "", cause: "", cause_subtype: "" };
  Object.keys(sel).forEach(function (d) { if (page.current && page.current[d]) sel[d] = page.current[d]; });
  var noteEl = document.getElementById("note");
  var statusEl = document.getElementById("status");
  var busy = false;

  function activeDims() {
    var dims = ["stage", "symptom", "cause"];
    if (sel.cause && (subtypes[sel.cause] || []).length) dims.push("cause_subtype");
    return dims;
  }
  function firstMissing() {
    var dims = activeDims();
    for (var i = 0; i < dims.length; i++) if (!sel[dims[i]]) return dims[i];
    return null;
  }
  var focusDim = firstMissing() || "stage";

  function setStatus(text, kind) {
    statusEl.textContent = text || "";
    statusEl.className = "status" + (kind ? " " + kind : "");
  }

  function render() {
    var dims = activeDims();
    if (dims.indexOf(focusDim) < 0) focusDim = dims[dims.length - 1];
    document.querySelectorAll(".dim").forEach(function (sec) {
      var d = sec.getAttribute("data-dim");
      sec.classList.toggle("focused", d === focusDim);
      sec.classList.toggle("inactive", dims.indexOf(d) < 0);
      sec.classList.toggle("complete", !!sel[d]);
    });
    document.querySelectorAll(".choice").forEach(function (b) {
      var on = sel[b.getAttribute("data-dim")] === b.getAttribute("data-value");
      b.classList.toggle("selected", on);
      b.setAttribute("aria-pressed", on ? "true" : "false");
    });
    // only the subtypes of the chosen cause are offered
    document.querySelectorAll('.dim[data-dim="cause_subtype"] .choices').forEach(function (ol) {
      ol.hidden = ol.getAttribute("data-cause") !== sel.cause;
    });
    var none = document.querySelector(".subtype-none");
    if (none) {
      none.hidden = dims.indexOf("cause_subtype") >= 0;
      none.textContent = sel.cause ? "No subtype needed for this cause." : "Choose a cause first.";
    }
    document.querySelectorAll("[data-chosen-for]").forEach(function (span) {
      var d = span.getAttribute("data-chosen-for");
      var btn = sel[d] && document.getElementById("choice-" + d + "-" + sel[d]);
      span.textContent = btn ? "· " + btn.querySelector(".choice-name").textContent : "";
    });
  }

  function moveFocus(step) {
    var dims = activeDims();
    var i = dims.indexOf(focusDim);
    focusDim = dims[Math.max(0, Math.min(dims.length - 1, i + step))];
    render();
    var sec = document.getElementById("dim-" + focusDim);
    if (sec && sec.scrollIntoView) sec.scrollIntoView({ block: "nearest" });
  }

  function choose(dim, value) {
    sel[dim] = value;
    if (dim === "cause" && (subtypes[value] || []).indexOf(sel.cause_subtype) < 0) sel.cause_subtype = "";
    setStatus("");
    // picking moves focus to the next dimension (predictable), or to one still missing
    var dims = activeDims();
    var i = dims.indexOf(dim);
    focusDim = i + 1 < dims.length ? dims[i + 1] : (firstMissing() || dim);
    render();
    var sec = document.getElementById("dim-" + focusDim);
    if (sec && sec.scrollIntoView) sec.scrollIntoView({ block: "nearest" });
  }

  function save() {
    if (busy) return;
    var missing = firstMissing();
    if (missing) {
      focusDim = missing;
      render();
      setStatus("Not saved: choose a " + missing.replace("_", " ") + " first.", "error");
      return;
    }
    busy = true;
    setStatus("Saving…", "");
    var body = {
      url: page.url, stage: sel.stage, symptom: sel.symptom, cause: sel.cause,
      cause_subtype: sel.cause_subtype, note: noteEl ? noteEl.value : ""
    };
    post(body, true);
  }

  function post(body, mayRetry) {
    fetch("/api/label", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
      body: JSON.stringify(body)
    }).then(function (resp) {
      return resp.json().catch(function () { return { error: "HTTP " + resp.status }; })
        .then(function (j) { return { ok: resp.ok, body: j }; });
    }).then(function (r) {
      if (r.ok && r.body.ok) {
        setStatus("Saved.", "ok");
        window.location.assign(r.body.next);
      } else if (mayRetry && r.body.code === "csrf") {
        // the server restarted since this page was opened: take its new token, save again
        fetch("/api/token", { credentials: "same-origin" }).then(function (resp) { return resp.json(); })
          .then(function (j) { token = j.token || token; post(body, false); })
          .catch(function () { failed("the server did not give a new token; reload the page (your choices here are not saved yet)"); });
      } else {
        failed(r.body.error || "server error");
      }
    }).catch(function () {
      failed("the labelling server is not answering (is `mine label` still running?). " +
             "Your choices stay on this page: press Enter to try again.");
    });
  }

  function failed(why) {
    busy = false;
    setStatus("Not saved: " + why, "error");
  }

  function go(where) { if (where) window.location.assign(where); }

  document.querySelectorAll(".choice").forEach(function (b) {
    b.addEventListener("click", function () { choose(b.getAttribute("data-dim"), b.getAttribute("data-value")); });
  });
  // clicking a folded dimension opens it again
  document.querySelectorAll(".dim").forEach(function (sec) {
    sec.querySelector("h2").addEventListener("click", function () {
      var d = sec.getAttribute("data-dim");
      if (activeDims().indexOf(d) >= 0) { focusDim = d; render(); }
    });
  });
  document.getElementById("save").addEventListener("click", save);
  document.getElementById("skip").addEventListener("click", function () { go(page.next); });
  document.getElementById("back").addEventListener("click", function () { go(page.prev); });

  document.addEventListener("keydown", function (ev) {
    if (!helpEl.hidden) {
      if (ev.key === "Escape" || ev.key === "?") { toggleHelp(false); ev.preventDefault(); }
      return;
    }
    if (ev.target === noteEl) {
      if (ev.key === "Escape") { noteEl.blur(); ev.preventDefault(); }
      else if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); save(); }
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    // Caps Lock on: "S" still skips, "A" still picks a
    var k = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
    if (k === "?") { toggleHelp(true); }
    else if (k === "Enter") { save(); }
    else if (k === "Tab") { moveFocus(ev.shiftKey ? -1 : 1); }
    else if (k === "ArrowDown") { moveFocus(1); }
    else if (k === "ArrowUp") { moveFocus(-1); }
    else if (k === "ArrowRight" || k === "s") { go(page.next); }
    else if (k === "ArrowLeft" || k === "p") { go(page.prev); }
    else if (k === "n") { noteEl.focus(); }
    else if (k === "o") { window.open(page.github, "_blank", "noopener,noreferrer"); }
    else if (k === "j") { window.scrollBy(0, 160); }
    else if (k === "k") { window.scrollBy(0, -160); }
    else if (k === "Escape") { setStatus(""); }
    else {
      var scope = document.getElementById("dim-" + focusDim);
      var btn = null;
      scope.querySelectorAll(".choice").forEach(function (b) {
        if (!btn && b.getAttribute("data-key") === k.toLowerCase() && !b.closest("ol").hidden) btn = b;
      });
      if (!btn) return;
      choose(focusDim, btn.getAttribute("data-value"));
    }
    ev.preventDefault();
  });

  render();
})();
