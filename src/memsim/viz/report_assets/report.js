// memsim report: the time slider redraws the heap map (canvas), the mmapped chunks and the
// bins from the snapshots embedded as JSON (#memsim-data). Data is inserted with
// textContent only, never as HTML.
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("memsim-data").textContent);
  var H = D.heap;
  if (!H) { return; }
  var slider = document.getElementById("slider");
  var canvas = document.getElementById("heapmap");
  var ctx = canvas.getContext("2d");
  var at = document.getElementById("at");
  var info = document.getElementById("heapinfo");
  var mm = document.getElementById("mmapped");
  var bins = document.getElementById("bins");
  var cursor = document.getElementById("cursor");
  var ROWS = 32, ROWH = 12, GAP = 1;
  canvas.height = ROWS * ROWH;
  var W = canvas.width;
  var perRow = Math.max(Math.ceil(H.span / ROWS), 1);

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined) { e.textContent = text; }
    if (cls) { e.className = cls; }
    return e;
  }
  function human(n) {
    var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (Math.abs(n) >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + u[i];
  }
  function fmt(n) { return n.toLocaleString("en-US"); }

  // legend
  var legend = document.getElementById("heaplegend");
  H.kinds.forEach(function (k) {
    var sw = el("span", undefined, "sw"); sw.style.background = k[1];
    legend.appendChild(sw); legend.appendChild(el("span", k[2]));
  });
  var sw0 = el("span", undefined, "sw"); sw0.style.background = "#f7f7f7";
  legend.appendChild(sw0); legend.appendChild(el("span", "above the break"));

  function fill(off, len, colour) {
    ctx.fillStyle = colour;
    while (len > 0) {
      var row = Math.floor(off / perRow);
      if (row >= ROWS) { return; }
      var o = off - row * perRow;
      var take = Math.min(len, perRow - o);
      var x = o / perRow * W, w = take / perRow * W;
      ctx.fillRect(x, row * ROWH, Math.max(w, 0.6), ROWH - GAP);
      off += take; len -= take;
    }
  }

  function draw(i) {
    var s = H.snapshots[i];
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, canvas.height);
    fill(0, perRow * ROWS, "#f7f7f7");
    var off = s.o;
    for (var j = 0; j < s.r.length; j += 2) {
      fill(off, s.r[j + 1], H.kinds[s.r[j]][1]);
      off += s.r[j + 1];
    }
    if (s.k) {                       // one run per chunk: mark where each chunk starts
      off = s.o;
      ctx.fillStyle = "rgba(255,255,255,0.85)";
      for (j = 0; j < s.r.length; j += 2) {
        var row = Math.floor(off / perRow);
        var x = (off - row * perRow) / perRow * W;
        if (s.r[j + 1] / perRow * W >= 3) { ctx.fillRect(x, row * ROWH, 1, ROWH - GAP); }
        off += s.r[j + 1];
      }
    }
    at.textContent = fmt(s.e) + " of " + fmt(H.calls) + " (snapshot " + (i + 1) + " of " +
      H.snapshots.length + ")";
    var who = D.meta.program ? D.meta.program + ", " : "";
    var parts = [who + H.allocator + " model: heap from " + H.base + ", " + human(perRow) + " per row; live " + human(s.l) +
      ", footprint " + human(s.f) + ", VmRSS " + fmt(s.rss) + " kB."];
    var kinds = Object.keys(s.c).map(function (k) {
      return k + " " + fmt(s.c[k][0]) + " (" + human(s.c[k][1]) + ")";
    });
    parts.push("Chunks: " + kinds.join(", ") + ".");
    parts.push(s.q ? "Drawn in cells of " + fmt(s.q) + " bytes, each in the kind holding most " +
      "of its bytes (too many chunks to draw one by one)." : s.k ?
      "Every chunk drawn (a white tick where each chunk starts, when it is 3 pixels wide)." :
      "Every chunk drawn, adjacent chunks of one kind as one block.");
    info.textContent = parts.join(" ");
    mm.textContent = "";
    if (!s.m.length) { mm.appendChild(el("span", "none", "note")); }
    s.m.forEach(function (size) {
      var b = el("span", human(size), "mm");
      b.style.background = H.mmapped_colour;
      b.style.width = Math.min(40 + 12 * Math.max(Math.log2(size) - 12, 0), 400) + "px";
      b.title = fmt(size) + " bytes";
      mm.appendChild(b);
    });
    if (s.nm > s.m.length) { mm.appendChild(el("span", " and " + (s.nm - s.m.length) + " more")); }
    bins.textContent = "";
    Object.keys(s.b).forEach(function (sec) {
      bins.appendChild(el("div", sec, "sec"));
      var rows = s.b[sec];
      if (!rows.length) { bins.appendChild(el("div", "empty")); }
      rows.forEach(function (r) {
        var chain = r[3].join(" -> ") + (r[1] > r[3].length ? " -> ..." : "");
        bins.appendChild(el("div", r[0] + " [" + r[1] + "] " + human(r[2]) + ": " + chain));
      });
    });
    if (cursor) {
      var x = +cursor.dataset.left + (+cursor.dataset.width) * s.e / Math.max(+cursor.dataset.xmax, 1);
      cursor.setAttribute("x1", x); cursor.setAttribute("x2", x);
    }
  }
  slider.addEventListener("input", function () { draw(+slider.value); });
  draw(+slider.value);
})();
