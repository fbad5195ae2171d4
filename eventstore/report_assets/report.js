"use strict";
// The report's script: draws the timeline, the task graph and the event table from the
// JSON in #report-data. Every text from the ledger goes in with textContent (never as markup).
(function () {
  var D = JSON.parse(document.getElementById("report-data").textContent);
  var E = D.events, T = D.tasks, RUN = D.run;
  var CLASSES = ["failed", "cancelled", "skipped", "success", "finished", "running", "retrying",
                 "paused", "scheduled", "pending"];
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function who(e) { return e.k < 0 ? "flow " + RUN.flow : e.key; }
  function utc(ms) { return new Date(D.t0 + ms).toISOString().slice(11, 23); }
  function fmtMs(ms) { return ms >= 1000 ? (ms / 1000).toFixed(ms >= 10000 ? 1 : 2) + " s" : ms.toFixed(ms >= 10 ? 0 : 2) + " ms"; }
  function summary(e) {
    var lines = [who(e) + " · " + e.o + " → " + e.n + (e.m ? ": " + e.m : ""),
                 "seq " + e.s + " · attempt " + e.a + " · " + utc(e.t) + " UTC (+" + fmtMs(e.t) + ")"];
    if (e.w) lines.push("✎ rewritten by " + e.w.join(", ") + " (proposed " + e.p + (e.pm ? ": " + e.pm : "") + ")");
    if (e.why !== undefined) lines.push("⚑ marked by " + e.by + ": " + e.why);
    return lines.join("\n");
  }

  // --- details panel --------------------------------------------------------------
  var selected = null;
  function showEvent(i) {
    var e = E[i], body = $("details-body");
    body.textContent = "";
    body.appendChild(el("h3", "", "Event " + e.s + ": " + who(e)));
    if (e.w) body.appendChild(el("p", "why", "✎ A state handler rewrote this transition: " + e.p +
      " was proposed, " + e.w.join(" then ") + " turned it into " + e.n + "."));
    if (e.why !== undefined) body.appendChild(el("p", "why", "⚑ A manual mark by " + e.by + ": " + e.why));
    var dl = el("dl");
    var rows = [["transition", e.o + " → " + e.n], ["message", e.m], ["result", e.r],
                ["proposed", e.p ? e.p + (e.pm ? ": " + e.pm : "") : undefined],
                ["rewritten by", e.w ? e.w.join("\n") : undefined], ["reason", e.why],
                ["attempt", e.a], ["time", utc(e.t) + " UTC (+" + fmtMs(e.t) + ")"], ["actor", e.by], ["seq", e.s]];
    rows.forEach(function (r) {
      if (r[1] === undefined || r[1] === "") return;
      dl.appendChild(el("dt", "", r[0]));
      dl.appendChild(el("dd", "", r[1]));
    });
    body.appendChild(dl);
    var go = el("button", "go", "Show " + (e.k < 0 ? "the flow's" : "this task's") + " events in the table");
    go.type = "button";
    go.addEventListener("click", function () { $("ev-task").value = String(e.k); filterEvents(); $("events").scrollIntoView(); });
    body.appendChild(go);
    $("details").hidden = false;
    if (selected) selected.classList.remove("sel");
    selected = document.querySelector('.seg[data-i="' + i + '"]');
    if (selected) selected.classList.add("sel");
  }
  $("details-close").addEventListener("click", function () { $("details").hidden = true; });

  // --- timeline ------------------------------------------------------------------------
  var scale = "time";
  function x(i) {  // an event's position, in % of the track
    if (scale === "seq") return E.length > 1 ? 100 * i / (E.length - 1) : 0;
    return RUN.span_ms > 0 ? 100 * E[i].t / RUN.span_ms : 0;
  }
  function seg(i, from, to, cls, extra) {
    var s = el("span", "seg c-" + cls + (extra ? " " + extra : ""));
    s.style.left = from.toFixed(3) + "%";
    if (to !== null) s.style.width = Math.max(0, to - from).toFixed(3) + "%";
    s.dataset.i = i;
    s.title = summary(E[i]);
    return s;
  }
  function marker(i, pos, cls, glyph, label) {
    var m = el("span", "mk " + cls, glyph);
    m.style.left = pos.toFixed(3) + "%";
    m.dataset.i = i;
    m.title = label + "\n" + summary(E[i]);
    return m;
  }
  function drawTrack(track, evs) {
    track.textContent = "";
    var first = evs[0];
    if (x(first) > 0) track.appendChild(seg(first, 0, x(first), E[first].oc, "wait"));
    evs.forEach(function (i, j) {
      var e = E[i], from = x(i), last = j === evs.length - 1;
      if (!last) track.appendChild(seg(i, from, x(evs[j + 1]), e.nc, e.w ? "rw" : ""));
      else if (/^(failed|cancelled|skipped|success|finished)$/.test(e.nc)) track.appendChild(seg(i, from, null, e.nc, "end" + (e.w ? " rw" : "")));
      else track.appendChild(seg(i, from, 100, e.nc, "open"));
      if (e.w) track.appendChild(marker(i, from, "mk-rw", "✎", "rewritten by a state handler"));
      if (e.why !== undefined) track.appendChild(marker(i, from, "mk-mark", "⚑", "manual mark"));
      if (e.a > 1 && e.o === "Retrying") track.appendChild(marker(i, from, "mk-retry", "↻", "attempt " + e.a));
    });
  }
  function flagsOf(t) {
    var f = [];
    if (t.failed) f.push(["f-failed", "✕ " + t.type, "ended " + t.type + ": " + t.message]);
    if (t.retried || t.attempts > 1) f.push(["f-retried", "↻" + t.attempts, t.attempts + " attempts"]);
    if (t.rewritten) f.push(["f-rewritten", "✎", "a state handler rewrote a transition"]);
    if (t.marked) f.push(["f-marked", "⚑", "marked by hand"]);
    return f;
  }
  var rows = [], tracks = [], groups = [], grouped = false, WORST = ["failed", "cancelled", "running", "retrying",
    "paused", "scheduled", "pending", "none", "skipped", "finished", "success"];
  function notable(t) { return t.failed || t.retried || t.attempts > 1 || t.rewritten || t.marked; }
  function taskRow(t, k) {
    var r = el("div", "row" + (t.failed ? " is-failed" : "") + (t.rewritten ? " is-rewritten" : "") +
               (t.marked ? " is-marked" : "") + (t.retried || t.attempts > 1 ? " is-retried" : ""));
    r.dataset.key = t.key;
    r.dataset.final = t.type;
    var label = el("div", "label", t.key);
    label.title = t.key + " (" + t.name + "): " + t.type + (t.message ? ": " + t.message : "") + "\nclick: its events";
    flagsOf(t).forEach(function (f) { var s = el("span", "flag " + f[0], f[1]); s.title = f[2]; label.appendChild(s); });
    label.addEventListener("click", function () { $("ev-task").value = String(k); filterEvents(); $("events").scrollIntoView(); });
    var track = el("div", "track");
    r.appendChild(label); r.appendChild(track);
    rows.push(r); tracks.push([track, t.events]);
    return r;
  }
  // Tasks sharing a name (name-1, name-2, ...) make a group: one summary row that opens on click.
  function groupRow(g) {
    var members = g.members.map(function (k) { return T[k]; }), counts = {};
    members.forEach(function (t) { counts[t.cls] = (counts[t.cls] || 0) + 1; });
    g.worst = worstOf(g.members);
    var r = el("div", "row group"), label = el("div", "label", "▸ " + g.name + " ×" + members.length);
    r.dataset.group = g.name;
    var failed = members.filter(function (t) { return t.failed; }).length,
        retried = members.filter(function (t) { return t.retried || t.attempts > 1; }).length,
        rewritten = members.filter(function (t) { return t.rewritten; }).length,
        marked = members.filter(function (t) { return t.marked; }).length;
    [["f-failed", failed, "✕"], ["f-retried", retried, "↻"], ["f-rewritten", rewritten, "✎"], ["f-marked", marked, "⚑"]]
      .forEach(function (f) { if (f[1]) label.appendChild(el("span", "flag " + f[0], f[2] + f[1])); });
    label.title = g.name + ": " + Object.keys(counts).map(function (c) { return counts[c] + " " + c; }).join(", ") + "\nclick: show or hide its tasks";
    label.addEventListener("click", function () { g.open = !g.open; label.firstChild.textContent = (g.open ? "▾ " : "▸ ") + g.name + " ×" + members.length; filterTimeline(); });
    var track = el("div", "track"), first = E[members[0].events[0]].t, last = first;
    members.forEach(function (t) { first = Math.min(first, E[t.events[0]].t); last = Math.max(last, E[t.events[t.events.length - 1]].t); });
    g.span = [first, last];
    g.track = track;
    r.appendChild(label); r.appendChild(track);
    g.row = r;
  }
  function drawGroup(g) {
    var members = g.members, from, to;
    if (scale === "seq") {
      from = Math.min.apply(null, members.map(function (k) { return T[k].events[0]; }));
      to = Math.max.apply(null, members.map(function (k) { return T[k].events[T[k].events.length - 1]; }));
      from = x(from); to = x(to);
    } else {
      from = RUN.span_ms > 0 ? 100 * g.span[0] / RUN.span_ms : 0; to = RUN.span_ms > 0 ? 100 * g.span[1] / RUN.span_ms : 0;
    }
    g.track.textContent = "";
    var bar = el("span", "seg sum c-" + g.worst);
    bar.style.left = from.toFixed(3) + "%";
    bar.style.width = Math.max(0, to - from).toFixed(3) + "%";
    bar.title = g.row.firstChild.title;
    g.track.appendChild(bar);
  }
  function buildTimeline() {
    var box = $("tl-rows"), frag = document.createDocumentFragment(), byName = {};
    if (RUN.flow_events.length) {
      var fr = el("div", "row flow");
      fr.dataset.flow = RUN.flow;
      var fl = el("div", "label", "flow " + RUN.flow);
      fl.title = "the flow: " + RUN.type + (RUN.message ? ": " + RUN.message : "");
      var ft = el("div", "track");
      fr.appendChild(fl); fr.appendChild(ft); frag.appendChild(fr);
      tracks.push([ft, RUN.flow_events]);
    }
    T.forEach(function (t, k) {
      frag.appendChild(taskRow(t, k));
      if (!byName[t.name]) groups.push(byName[t.name] = { name: t.name, members: [], open: false });
      byName[t.name].members.push(k);
    });
    groups.forEach(function (g) {
      if (g.members.length < 2) return;
      groupRow(g);
      g.members.forEach(function (k) { rows[k].classList.add("member"); });
    });
    box.appendChild(frag);
    box.addEventListener("click", function (ev) {
      var target = ev.target.closest("[data-i]");
      if (target) showEvent(+target.dataset.i);
    });
    drawAll();
  }
  function worstOf(members) {
    var worst = "success";
    members.forEach(function (k) { if (WORST.indexOf(T[k].cls) < WORST.indexOf(worst)) worst = T[k].cls; });
    return worst;
  }
  function setGrouped(on) {  // reorder the rows: the flow, then each group's summary and its tasks
    grouped = on;
    var box = $("tl-rows"), frag = document.createDocumentFragment();
    box.classList.toggle("grouped", on);
    if (on) {
      groups.forEach(function (g) {
        if (g.row) frag.appendChild(g.row);
        g.members.forEach(function (k) { frag.appendChild(rows[k]); });
      });
    } else {
      groups.forEach(function (g) { if (g.row && g.row.parentNode) g.row.remove(); });
      rows.forEach(function (r) { frag.appendChild(r); });
    }
    box.appendChild(frag);
    filterTimeline();
  }
  function drawAll() {
    tracks.forEach(function (tr) { drawTrack(tr[0], tr[1]); });
    groups.forEach(function (g) { if (g.row) drawGroup(g); });
    drawAxis();
  }
  function drawAxis() {
    var axis = $("tl-axis");
    axis.textContent = "";
    var n = 6;
    for (var j = 0; j <= n; j++) {
      var label = scale === "seq" ? "seq " + E[Math.round((E.length - 1) * j / n)].s : "+" + fmtMs(RUN.span_ms * j / n);
      var s = el("span", j === 0 ? "first" : j === n ? "last" : "", j === 0 && scale === "time" ? utc(0) + " UTC" : label);
      s.style.left = (100 * j / n) + "%";
      axis.appendChild(s);
    }
  }
  function filterTimeline() {
    var text = $("tl-filter").value.trim().toLowerCase(), cls = $("tl-class").value, only = $("tl-notable").checked;
    var filtering = !!(text || cls || only), shown = 0, match = [];
    T.forEach(function (t, k) {
      match[k] = (!text || t.key.toLowerCase().indexOf(text) >= 0 || t.name.toLowerCase().indexOf(text) >= 0) &&
                 (!cls || t.cls === cls) && (!only || notable(t));
      if (match[k]) shown++;
    });
    groups.forEach(function (g) {
      var open = !grouped || !g.row || g.open || filtering, any = false;
      g.members.forEach(function (k) { rows[k].hidden = !(match[k] && open); any = any || match[k]; });
      if (g.row) g.row.hidden = !any;
    });
    $("tl-count").textContent = shown === T.length ? T.length + " tasks" : shown + " of " + T.length + " tasks";
  }
  function buildControls() {
    var counts = {};
    T.forEach(function (t) { counts[t.cls] = (counts[t.cls] || 0) + 1; });
    var legend = $("legend"), select = $("tl-class");
    CLASSES.forEach(function (c) {
      var item = el("span", "", c + (counts[c] ? " (" + counts[c] + ")" : ""));
      item.insertBefore(el("i", "c-" + c), item.firstChild);
      item.title = counts[c] ? "show only tasks that ended " + c : "no task ended " + c;
      item.addEventListener("click", function () { select.value = counts[c] ? c : ""; filterTimeline(); });
      legend.appendChild(item);
      if (counts[c]) { var o = el("option", "", c + " (" + counts[c] + ")"); o.value = c; select.appendChild(o); }
    });
    ["tl-filter", "tl-class", "tl-notable"].forEach(function (id) { $(id).addEventListener("input", filterTimeline); });
    var many = groups.some(function (g) { return g.members.length > 1; });
    $("tl-group").disabled = !many;
    $("tl-group").checked = many && T.length > 200;  // a long run opens grouped
    $("tl-group").addEventListener("input", function () { setGrouped($("tl-group").checked); });
    document.querySelectorAll('input[name="tl-scale"]').forEach(function (r) {
      r.addEventListener("change", function () { scale = r.value; drawAll(); });
    });
  }

  // --- task graph ------------------------------------------------------------------------
  function goToTask(k) {
    var r = rows[k];
    if (!r) return;
    r.hidden = false;
    r.scrollIntoView({ block: "center" });
    r.classList.add("flash");
    setTimeout(function () { r.classList.remove("flash"); }, 1500);
  }
  function chip(k) {
    var t = T[k], c = el("span", "chip c-" + t.cls, t.key);
    c.title = t.key + ": " + t.type + (t.message ? ": " + t.message : "");
    c.addEventListener("click", function () { goToTask(k); });
    return c;
  }
  function buildGraph() {
    var view = $("graph-view"), note = $("graph-note");
    if (!T.length) {
      note.textContent = "No task of this run has committed a transition.";
      view.hidden = true;
      return;
    }
    if (!D.edges) {
      note.textContent = "The ledger records every task's transitions but not the flow's edges. Tasks are listed in " +
        "the order they first committed; pass the flow (store.report(run_id, flow=flow), or stateledger report " +
        "RUN_ID --flow FILE[:FLOW]) to draw its graph.";
      var line = el("div", "layer");
      line.appendChild(el("b", "", "in order"));
      T.forEach(function (t, k) { line.appendChild(chip(k)); });
      view.appendChild(line);
      return;
    }
    var ups = T.map(function () { return []; }), downs = T.map(function () { return []; });
    D.edges.forEach(function (e) { ups[e[1]].push(e[0]); downs[e[0]].push(e[1]); });
    var depth = T.map(function () { return 0; }), waiting = ups.map(function (u) { return u.length; }), queue = [];
    waiting.forEach(function (w, k) { if (w === 0) queue.push(k); });
    for (var q = 0; q < queue.length; q++) {
      downs[queue[q]].forEach(function (d) {
        depth[d] = Math.max(depth[d], depth[queue[q]] + 1);
        if (--waiting[d] === 0) queue.push(d);
      });
    }
    var layers = [];
    T.forEach(function (t, k) { (layers[depth[k]] = layers[depth[k]] || []).push(k); });
    note.textContent = T.length + " tasks, " + D.edges.length + " edges, " + layers.length + " layers (a task's layer: " +
      "the longest chain of upstream tasks before it). Colour: the task's final state; click a task to find it in the timeline.";
    if (T.length > 300) {
      layers.forEach(function (layer, d) {
        var line = el("div", "layer");
        line.appendChild(el("b", "", "layer " + d));
        layer.forEach(function (k) { line.appendChild(chip(k)); });
        view.appendChild(line);
      });
      return;
    }
    var NS = "http://www.w3.org/2000/svg", W = 150, H = 22, GX = 50, GY = 8, pos = [];
    var rowsMax = Math.max.apply(null, layers.map(function (l) { return l.length; }));
    layers.forEach(function (layer, d) { layer.forEach(function (k, r) { pos[k] = [d * (W + GX), r * (H + GY)]; }); });
    var svg = document.createElementNS(NS, "svg");
    svg.setAttribute("width", layers.length * (W + GX));
    svg.setAttribute("height", rowsMax * (H + GY));
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "task graph");
    D.edges.forEach(function (e) {
      var a = pos[e[0]], b = pos[e[1]], p = document.createElementNS(NS, "path");
      var x1 = a[0] + W, y1 = a[1] + H / 2, x2 = b[0], y2 = b[1] + H / 2, mid = (x1 + x2) / 2;
      p.setAttribute("d", "M" + x1 + "," + y1 + " C" + mid + "," + y1 + " " + mid + "," + y2 + " " + x2 + "," + y2);
      svg.appendChild(p);
    });
    T.forEach(function (t, k) {
      var g = document.createElementNS(NS, "g"), rect = document.createElementNS(NS, "rect"), text = document.createElementNS(NS, "text");
      var title = document.createElementNS(NS, "title");
      rect.setAttribute("x", pos[k][0]); rect.setAttribute("y", pos[k][1]);
      rect.setAttribute("width", W); rect.setAttribute("height", H); rect.setAttribute("rx", 3);
      rect.setAttribute("class", "c-" + t.cls);
      rect.style.fill = "var(--" + t.cls + ")";
      text.setAttribute("x", pos[k][0] + 6); text.setAttribute("y", pos[k][1] + 15);
      if (t.cls === "pending" || t.cls === "none") text.setAttribute("class", "dark");
      text.textContent = t.key.length > 22 ? t.key.slice(0, 21) + "…" : t.key;
      title.textContent = t.key + ": " + t.type + (t.message ? ": " + t.message : "") +
        (ups[k].length ? "\nupstream: " + ups[k].map(function (u) { return T[u].key; }).join(", ") : "");
      g.appendChild(title); g.appendChild(rect); g.appendChild(text);
      g.dataset.key = t.key;
      g.addEventListener("click", function () { goToTask(k); });
      svg.appendChild(g);
    });
    view.appendChild(svg);
  }

  // --- event table (only the rows in view are in the DOM) -------------------------------
  var ROW = 23, shownEvents = E.map(function (e, i) { return i; });
  function filterEvents() {
    var task = $("ev-task").value, state = $("ev-state").value, text = $("ev-text").value.trim().toLowerCase();
    var rw = $("ev-rewritten").checked, mk = $("ev-marked").checked;
    shownEvents = [];
    E.forEach(function (e, i) {
      if (task !== "" && e.k !== +task) return;
      if (state && e.n !== state && e.o !== state && e.p !== state) return;
      if (rw && !e.w) return;
      if (mk && e.why === undefined) return;
      if (text && [e.key, e.m, e.r, e.p, e.pm, e.w && e.w.join(" "), e.why, e.by, e.n, e.o].join("\n").toLowerCase().indexOf(text) < 0) return;
      shownEvents.push(i);
    });
    $("ev-count").textContent = shownEvents.length === E.length ? E.length + " events" : shownEvents.length + " of " + E.length + " events";
    $("ev-inner").style.height = shownEvents.length * ROW + "px";
    $("ev-body").scrollTop = 0;
    drawEvents(true);
  }
  var drawn = [-1, -1];
  function drawEvents(force) {
    var body = $("ev-body"), inner = $("ev-inner");
    var from = Math.max(0, Math.floor(body.scrollTop / ROW) - 20);
    var to = Math.min(shownEvents.length, Math.ceil((body.scrollTop + (body.clientHeight || 600)) / ROW) + 20);
    if (!force && from === drawn[0] && to === drawn[1]) return;
    drawn = [from, to];
    inner.textContent = "";
    var frag = document.createDocumentFragment();
    for (var j = from; j < to; j++) {
      var i = shownEvents[j], e = E[i];
      var r = el("div", "ev-row" + (e.w ? " rewritten" : "") + (e.why !== undefined ? " marked" : ""));
      r.setAttribute("role", "row");
      r.dataset.i = i;
      r.style.top = j * ROW + "px";
      r.title = summary(e);
      var tr = el("span");
      tr.appendChild(document.createTextNode(e.o + " → "));
      tr.appendChild(el("span", "to", e.n));
      var notes = (e.w ? "✎ " + e.w.join(", ") + " (was " + e.p + ")" : "") + (e.why !== undefined ? "⚑ " + e.why : "");
      [el("span", "", e.s), el("span", "", utc(e.t)), el("span", "", e.t.toFixed(1)), el("span", "", who(e)),
       el("span", "", e.a), tr, el("span", "", e.m), el("span", "", notes), el("span", "", e.by)].forEach(function (c) {
        c.setAttribute("role", "cell"); r.appendChild(c);
      });
      frag.appendChild(r);
    }
    inner.appendChild(frag);
  }
  function buildEvents() {
    var taskSel = $("ev-task"), stateSel = $("ev-state"), types = {};
    var frag = document.createDocumentFragment();
    T.forEach(function (t, k) { var o = el("option", "", t.key); o.value = String(k); frag.appendChild(o); });
    taskSel.appendChild(frag);
    E.forEach(function (e) { types[e.n] = 1; types[e.o] = 1; if (e.p) types[e.p] = 1; });
    Object.keys(types).sort().forEach(function (n) { var o = el("option", "", n); o.value = n; stateSel.appendChild(o); });
    ["ev-task", "ev-state", "ev-text", "ev-rewritten", "ev-marked"].forEach(function (id) { $(id).addEventListener("input", filterEvents); });
    $("ev-body").addEventListener("scroll", function () { drawEvents(false); });
    $("ev-inner").addEventListener("click", function (ev) {
      var r = ev.target.closest("[data-i]");
      if (r) showEvent(+r.dataset.i);
    });
    filterEvents();
  }

  $("noscript-note").hidden = true;
  buildTimeline();
  buildControls();
  setGrouped($("tl-group").checked);
  buildGraph();
  buildEvents();
  document.body.dataset.ready = performance.now().toFixed(1);
})();
