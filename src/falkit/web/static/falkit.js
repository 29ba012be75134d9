/* falkit's page script: job event streams, dropping an image on the form, copying, selection.
   Hand-written, no build step; htmx (vendored beside it) does the requests and swaps. */
(function () {
  "use strict";

  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function text(el, value) { if (el) { el.textContent = value; } }

  /* ---- a job card follows its event stream ---- */

  function finish(card, state, cls) {
    card.dataset.ended = String(Date.now() / 1000);
    card.classList.add(cls);
    text(card.querySelector(".state"), state);
    var cancel = card.querySelector(".cancel");
    if (cancel) { cancel.remove(); }
    tick(card);
  }

  function showImages(card, result) {
    var box = card.querySelector(".images");
    (result.images || []).forEach(function (image) {
      var link = document.createElement("a");
      link.href = "/jobs/" + encodeURIComponent(card.dataset.job);
      var img = document.createElement("img");
      img.src = image.url;
      img.alt = "generated image";
      img.width = image.width;
      img.height = image.height;
      link.appendChild(img);
      box.appendChild(link);
    });
    if (result.kind === "training") {
      var p = document.createElement("p");
      p.className = "ready";
      p.textContent = "LoRA “" + result.name + "” is in the library" +
        (result.trigger_word ? " (trigger “" + result.trigger_word + "”)" : "") + ".";
      box.appendChild(p);
      if (window.htmx) { window.htmx.trigger(document.body, "loras-changed"); }
    }
  }

  function onEvent(card, event) {
    var logs = card.querySelector(".logs pre");
    var progress = card.querySelector("progress.steps");
    switch (event.type) {
      case "queued":
        text(card.querySelector(".state"), event.position > 0 ? "queued · position " + event.position : "queued");
        break;
      case "started":
        text(card.querySelector(".state"), "running");
        break;
      case "log":
      case "note":
        logs.textContent += (event.type === "note" ? "note: " : "") + event.message + "\n";
        break;
      case "step":
        progress.max = event.total || 1;
        progress.value = event.step;
        text(card.querySelector(".state"), "running · step " + event.step + "/" + event.total);
        break;
      case "downloading":
        text(card.querySelector(".state"), "downloading");
        break;
      case "completed":
        progress.max = 1;
        progress.value = 1;
        showImages(card, event.result || {});
        finish(card, "done", "done");
        break;
      case "failed":
        finish(card, "failed: " + event.error, "failed");
        break;
      case "cancelled":
        finish(card, "cancelled", "failed");
        break;
    }
  }

  function follow(card) {
    card.dataset.wired = "1";
    var source = new EventSource(card.dataset.events);
    source.onmessage = function (message) {
      var event = JSON.parse(message.data);
      onEvent(card, event);
      if (["completed", "failed", "cancelled"].indexOf(event.type) >= 0) { source.close(); }
    };
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED && !card.dataset.ended) {
        text(card.querySelector(".state"), "stream closed: reload to follow again");
      }
    };
  }

  function tick(card) {
    var start = parseFloat(card.dataset.started);
    var end = card.dataset.ended ? parseFloat(card.dataset.ended) : Date.now() / 1000;
    text(card.querySelector(".elapsed"), Math.max(0, end - start).toFixed(1) + " s");
  }

  setInterval(function () {
    document.querySelectorAll(".run[data-started]:not([data-ended])").forEach(tick);
  }, 100);

  /* ---- the form ---- */

  function loadImage(form, file) {
    var data = new FormData();
    data.append("image", file, file.name);
    form.classList.add("loading");
    fetch(form.dataset.drop, { method: "POST", body: data, headers: { "X-CSRF-Token": csrf() }, credentials: "same-origin" })
      .then(function (answer) { return answer.text(); })
      .then(function (html) {
        form.outerHTML = html;
        var fresh = document.getElementById("gen-form");
        if (fresh && window.htmx) { window.htmx.process(fresh); }
        if (fresh) { init(fresh); }
      })
      .finally(function () { form.classList.remove("loading"); });
  }

  function wireForm(form) {
    if (form.dataset.wired) { return; }
    form.dataset.wired = "1";
    form.addEventListener("dragover", function (e) { e.preventDefault(); form.classList.add("dragging"); });
    form.addEventListener("dragleave", function () { form.classList.remove("dragging"); });
    form.addEventListener("drop", function (e) {
      e.preventDefault();
      form.classList.remove("dragging");
      var file = e.dataTransfer && e.dataTransfer.files[0];
      if (file) { loadImage(form, file); }
    });
    form.addEventListener("change", function (e) {
      var t = e.target;
      if (t.matches("[data-load-image]") && t.files[0]) { loadImage(form, t.files[0]); }
      if (t.matches("[data-size]")) {
        var custom = form.querySelector(".custom-size");
        if (custom) { custom.classList.toggle("hidden", t.value !== "custom"); }
      }
    });
    form.addEventListener("click", function (e) {
      var t = e.target.closest("button");
      if (!t) { return; }
      if (t.dataset.clear) {
        var input = form.querySelector('[name="' + t.dataset.clear + '"]');
        input.value = "";
        input.dispatchEvent(new Event("input", { bubbles: true }));
      }
      if (t.dataset.lora) { pickLora(form, t.dataset.lora, t.dataset.trigger); }
    });
  }

  function pickLora(form, name, trigger) {
    var rows = form.querySelectorAll('input[name^="lora_path_"]');
    var row = Array.prototype.find.call(rows, function (r) { return r.value === name; }) ||
      Array.prototype.find.call(rows, function (r) { return !r.value; });
    if (!row) { return; }
    row.value = name;
    var hint = row.parentElement.querySelector(".trigger");
    text(hint, trigger ? "trigger “" + trigger + "”" : "");
    var prompt = form.querySelector('[name="prompt"]');
    if (trigger && prompt.value.indexOf(trigger) < 0) {
      prompt.value = (trigger + " " + prompt.value).trim();
    }
    row.dispatchEvent(new Event("input", { bubbles: true }));
  }

  /* ---- copy buttons, gallery selection, upload progress ---- */

  document.addEventListener("click", function (e) {
    var button = e.target.closest("[data-copy]");
    if (!button) { return; }
    var source = document.querySelector(button.dataset.copy);
    var value = source ? source.textContent : "";
    var done = function () { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(value).then(done, function () { selectText(source); });
    } else {
      selectText(source);
    }
  });

  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function updateSelection() {
    var bar = document.getElementById("selection");
    if (!bar) { return; }
    var count = document.querySelectorAll('input[name="job_id"][form="selection"]:checked').length;
    text(bar.querySelector(".count"), count + " selected");
    bar.querySelectorAll("[data-needs]").forEach(function (b) {
      var need = b.dataset.needs;
      b.disabled = need === "2" ? count !== 2 : count === 0;
    });
  }

  document.addEventListener("change", function (e) {
    if (e.target.matches('input[name="job_id"]')) {
      e.target.closest(".tile").classList.toggle("selected", e.target.checked);
      updateSelection();
    }
  });

  document.addEventListener("htmx:xhr:progress", function (e) {
    var bar = document.getElementById("upload-progress");
    if (bar && e.detail.lengthComputable) {
      bar.hidden = false;
      bar.max = e.detail.total;
      bar.value = e.detail.loaded;
    }
  });

  function init(root) {
    var scope = root.querySelectorAll ? root : document;
    if (scope.matches && scope.matches("[data-events]:not([data-wired])")) { follow(scope); }
    scope.querySelectorAll("[data-events]:not([data-wired])").forEach(follow);
    var form = document.getElementById("gen-form");
    if (form) { wireForm(form); }
    updateSelection();
  }

  if (window.htmx) {
    window.htmx.onLoad(init);
  } else {
    document.addEventListener("DOMContentLoaded", function () { init(document); });
  }
})();
