// repromatrix report: filters and lazily built cell details.
// Data is read from the inert JSON blob (script element #cells-data, type application/json) and
// inserted with textContent only; nothing here ever writes innerHTML.
"use strict";
(function () {
  var blob = null;
  function data() {
    if (blob === null) {
      var node = document.getElementById("cells-data");
      blob = JSON.parse(node ? node.textContent : '{"cells":[]}');
    }
    return blob;
  }
  // Controls, zero-width and bidirectional marks in recorded text are shown as "?": a
  // right-to-left override in a host or revision name would show it in another order. The
  // characters are those the page's own text hides (safetext.printable: what Python's
  // str.isprintable refuses, but tab and newline): "other" and "separator" categories.
  var HIDDEN = /[^\P{Cc}\t\n]|[^\P{Zs} ]|[\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}]/gu;
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text).replace(HIDDEN, "?");
    if (cls) e.className = cls;
    return e;
  }
  var LABELS = {passed: "passed", regressed: "regressed", untestable: "untestable",
    error: "error", timeout: "timeout", not_run: "not run here", none: "no result yet"};
  var SVG = "http://www.w3.org/2000/svg";
  // Status symbols are drawn (the page's SVG sprite), never typed: no font can box them.
  function icon(name) {
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "i");
    svg.setAttribute("aria-hidden", "true");
    var use = document.createElementNS(SVG, "use");
    use.setAttribute("href", "#s-" + ((LABELS[name] || name === "flaky") ? name : "none"));
    svg.appendChild(use);
    return svg;
  }

  function dl(pairs) {
    var d = el("dl");
    pairs.forEach(function (p) {
      if (p[1] === undefined || p[1] === null || p[1] === "") return;
      d.appendChild(el("dt", p[0]));
      d.appendChild(el("dd", typeof p[1] === "object" ? JSON.stringify(p[1]) : p[1]));
    });
    return d;
  }
  function pre(title, text) {
    var box = el("div");
    box.appendChild(el("h4", title));
    box.appendChild(el("pre", text));
    return box;
  }
  function render(c) {
    var box = el("details");
    box.open = true;
    var sum = el("summary");
    sum.appendChild(icon(c.flaky ? "flaky" : c.status));
    sum.appendChild(el("strong", " " + (c.flaky || LABELS[c.status] || c.status) + " — " + c.id));
    box.appendChild(sum);
    if (c.status === "not_run") box.appendChild(el("p", "not run here: " + (c.reason || ""), "reason"));
    else if (c.reason) box.appendChild(el("p", c.reason, "reason"));
    // c.flaky reads "flaky: 3 passed, 2 regressed": the counts are said once, here. Or
    // "machines disagree: m-a passed 2, ..." (each steady): no flaky repro, said so. So
    // are one machine's "bases disagree: ..." (its interpreters, or --cell-env variables).
    var split = /^(machines|bases|GPUs) disagree: /.exec(c.flaky || "");
    var each = {machines: "machine", bases: "base", GPUs: "GPU"};
    if (split) box.appendChild(el("p", "The " + split[1] + " disagree, each " + each[split[1]] + " gave one verdict every time (" + c.flaky.slice(split[0].length) + "): the newest verdict is shown, every record is listed below."));
    else if (c.flaky) box.appendChild(el("p", "The records of this cell disagree (" + c.flaky.replace(/^flaky: /, "") + "): the newest verdict is shown, every record is listed below."));
    if (data().matrix && c.apart) box.appendChild(el("p", "Its repro, " + c.repro + ", is not in " + data().matrix + " (renamed since, or a library's own test run by bisect --test): these are its records as stored."));
    else if (data().matrix && !c.expected && c.status !== "none") box.appendChild(el("p", "This cell is not in " + data().matrix + " (e.g. a commit evaluated by bisect)."));
    var pins = Object.keys(c.pins || {}).map(function (k) { return k + "=" + c.pins[k]; }).join(", ");
    var commits = Object.keys(c.commits || {}).map(function (k) { return k + "=" + c.commits[k]; }).join(", ");
    box.appendChild(dl([
      ["repro", c.repro], ["GPU", c.gpu], ["base", c.base], ["image", c.image], ["pins", pins],
      ["commits", commits], ["machine", c.machine], ["hostname (as recorded)", c.host],
      ["finished", c.finished], ["started", c.started], ["run id", c.run_id],
      ["executor", c.executor], ["exit code", c.exit_code], ["duration (s)", c.duration_s],
      ["cell id (as recorded)", c.cell_id], ["key", c.key]
    ]));
    if (c.metrics && c.metrics.length) {
      var t = el("table"), head = el("tr");
      ["metric", "value", "threshold"].forEach(function (h) { head.appendChild(el("th", h)); });
      t.appendChild(head);
      c.metrics.forEach(function (m) {
        var tr = el("tr");
        tr.appendChild(el("td", m[0]));
        tr.appendChild(el("td", m[1]));
        tr.appendChild(el("td", m[2] && m[3] ? m[2] + " (" + m[3] + ")" : m[2]));
        t.appendChild(tr);
      });
      box.appendChild(el("h4", "Metrics"));
      box.appendChild(t);
      var most = data().max_metrics;
      if (most && c.metrics.length >= most) box.appendChild(el("p", "A record keeps at most " + most.toLocaleString("en") + " metrics (the first its repro wrote): this one reached that limit, so any others were cut when it was made and are not in the results file."));
    }
    if (c.thresholds && Object.keys(c.thresholds).length) {
      box.appendChild(el("h4", "Tolerances and thresholds that bound no metric above"));
      box.appendChild(dl(Object.keys(c.thresholds).map(function (k) { return [k, c.thresholds[k]]; })));
    }
    if (c.provenance && Object.keys(c.provenance).length) box.appendChild(pre("Provenance", JSON.stringify(c.provenance, null, 2)));
    if (c.stdout) box.appendChild(pre("stdout (tail)", c.stdout));
    if (c.stderr) box.appendChild(pre("stderr (tail)", c.stderr));
    if (c.history && c.history.length) {
      box.appendChild(el("h4", "Other records of this cell (" + c.history.length + ", newest first)"));
      var ul = el("ul");
      c.history.forEach(function (h) {
        ul.appendChild(el("li", [h.finished, LABELS[h.status] || h.status, h.machine, h.host, h.run_id, h.executor, h.reason, "key " + h.key]
          .filter(function (x) { return x; }).join(" · ")));
      });
      box.appendChild(ul);
    }
    return box;
  }
  var selected = null;
  function panelOf(td) {
    var sec = td.closest("section.repro");
    return sec && sec.querySelector(".detail");
  }
  // focus: opened from the keyboard, the panel takes the focus (Tab would otherwise walk
  // every later cell to reach it); Escape or its Close button give it back to the cell.
  function open(td, focus) {
    var panel = panelOf(td);
    if (!panel) return;
    var c = data().cells[Number(td.getAttribute("data-i"))];
    if (!c) return;
    if (selected) selected.classList.remove("sel");
    selected = td;
    td.classList.add("sel");
    var close = el("button", "Close", "close");
    close.type = "button";
    close.addEventListener("click", shut);
    panel.replaceChildren(close, render(c));
    panel.setAttribute("tabindex", "-1");
    panel.setAttribute("aria-label", "Details of cell " + (c.id || ""));
    panel.hidden = false;
    if (focus) panel.focus();
  }
  function shut() {
    if (!selected) return;
    var td = selected, panel = panelOf(td);
    selected = null;
    td.classList.remove("sel");
    if (panel) { panel.hidden = true; panel.replaceChildren(); }
    td.focus();
  }
  document.addEventListener("click", function (ev) {
    var td = ev.target && ev.target.closest ? ev.target.closest("td.c[data-i]") : null;
    if (td) open(td, false);
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape" && selected) { shut(); return; }
    var td = ev.target && ev.target.matches && ev.target.matches("td.c[data-i]") ? ev.target : null;
    if (td && (ev.key === "Enter" || ev.key === " ")) {
      ev.preventDefault();  // Space would scroll the page
      open(td, true);
    }
  });
  // index.html#c12 (links from the compatibility page) opens cell 12's details.
  function fromHash() {
    var m = /^#c(\d+)$/.exec(location.hash);
    var td = m ? document.querySelector('td.c[data-i="' + m[1] + '"]') : null;
    if (!td) return;
    // A cell the filters hide (its section, row or GPU column) would open a panel nobody
    // sees: the filters are cleared first.
    if (!td.getClientRects().length) {
      [fRepro, fGpu, fStatus].forEach(function (s) { s.value = ""; });
      apply();
    }
    open(td, false);
    td.scrollIntoView({block: "center"});
  }
  window.addEventListener("hashchange", fromHash);

  var fRepro = document.getElementById("f-repro");
  var fGpu = document.getElementById("f-gpu");
  var fStatus = document.getElementById("f-status");
  var count = document.getElementById("f-count");
  var gpuStyle = document.createElement("style");
  document.head.appendChild(gpuStyle);

  function matches(tokens, gpu, status) {
    var list = (tokens || "").split(" ");
    for (var i = 0; i < list.length; i++) {
      var p = list[i].split(":");
      if ((gpu === "" || p[0] === gpu) && (status === "" || p[1] === status)) return true;
    }
    return false;
  }
  function apply() {
    var repro = fRepro.value, gpu = fGpu.value, status = fStatus.value;
    var others = [];
    if (gpu !== "") {
      for (var i = 0; i < fGpu.options.length - 1; i++) if (String(i) !== gpu) others.push(".g" + i);
    }
    gpuStyle.textContent = others.length ? others.join(",") + "{display:none}" : "";
    if (status) document.body.setAttribute("data-fs", status); else document.body.removeAttribute("data-fs");
    var shownRepros = 0, shownRows = 0;
    document.querySelectorAll("section.repro").forEach(function (sec) {
      var show = (repro === "" || sec.getAttribute("data-r") === repro) &&
        matches(sec.getAttribute("data-st"), gpu, status);
      sec.hidden = !show;
      if (!show) return;
      shownRepros++;
      sec.querySelectorAll("table.grid tbody tr").forEach(function (tr) {
        var ok = (status === "" && gpu === "") || matches(tr.getAttribute("data-st"), gpu, status);
        tr.hidden = !ok;
        if (ok) shownRows++;
      });
    });
    // Findings lines name one or several GPUs (data-g): shown when one of them is chosen.
    document.querySelectorAll("li[data-g]").forEach(function (li) {
      li.hidden = gpu !== "" && li.getAttribute("data-g").split(" ").indexOf(gpu) < 0;
    });
    document.querySelectorAll("table.summary:not(.changes) tbody tr").forEach(function (tr) {
      tr.hidden = !((repro === "" || tr.getAttribute("data-r") === repro) &&
        matches(tr.getAttribute("data-st"), gpu, status));
    });
    // A change (what changed since older results) names its repro and GPU, not the
    // statuses of a grid: the status filter leaves it shown.
    // Repros and GPUs are matched by their place in the menus (data-r, data-g), never by
    // their names as shown: "r\x00" and "r\u200b" both show as "r?".
    document.querySelectorAll("tr.change").forEach(function (tr) {
      tr.hidden = !((repro === "" || tr.getAttribute("data-r") === repro) &&
        (gpu === "" || tr.getAttribute("data-g") === gpu));
    });
    // Chart lines of other GPU types go too (a line gives its GPU's place in data-g).
    document.querySelectorAll("figure.chart g.line").forEach(function (g) {
      g.classList.toggle("off", gpu !== "" && g.getAttribute("data-g") !== gpu);
    });
    count.textContent = shownRepros + " regression" + (shownRepros === 1 ? "" : "s") + ", " + shownRows + " rows shown";
  }
  [fRepro, fGpu, fStatus].forEach(function (s) { s.addEventListener("change", apply); });
  apply();
  // Back and Forward give the menus their old values after this script ran (or restore
  // the page from the back/forward cache): apply them again once the page is shown.
  window.addEventListener("pageshow", apply);
  fromHash();
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  });
})();
