"""Page scripts (plain JS over the embedded JSON); kept here so the renderer stays readable."""

BACKTEST_JS = r"""
BK.run(function () {
  const D = JSON.parse(document.getElementById("bk-data").textContent);
  const LC = window.LightweightCharts;
  const T = BK.theme;
  const B = D.bars;
  const n = B.t.length;
  const chart = LC.createChart(document.getElementById("chart"), BK.chartOptions(LC));
  const priceFormat = { type: "price", precision: D.price.precision, minMove: D.price.minMove };

  const candles = chart.addSeries(LC.CandlestickSeries, {
    upColor: T.up, downColor: T.down, wickUpColor: T.up, wickDownColor: T.down, borderVisible: false,
    priceLineVisible: false, priceFormat,
  }, 0);
  const volume = chart.addSeries(LC.HistogramSeries, {
    priceScaleId: "vol", priceFormat: { type: "volume" }, lastValueVisible: false, priceLineVisible: false,
  }, 0);
  const cd = new Array(n), vd = new Array(n);
  for (let i = 0; i < n; i++) {
    cd[i] = { time: B.t[i], open: B.o[i], high: B.h[i], low: B.l[i], close: B.c[i] };
    vd[i] = { time: B.t[i], value: B.v[i], color: B.c[i] >= B.o[i] ? T.upA : T.downA };
  }
  candles.setData(cd);
  volume.setData(vd);
  candles.priceScale().applyOptions({ scaleMargins: { top: 0.06, bottom: 0.24 } });
  volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });

  // TP/SL segments: one line series per lane of [start, end] point pairs. Whitespace does not break a line in v5,
  // but a point's colour paints the segment leaving it, so a transparent end hides the jump to the next trade.
  const seg = function (color) {
    return { color, lineWidth: 1, lineStyle: LC.LineStyle.Dashed, priceLineVisible: false, lastValueVisible: false,
      crosshairMarkerVisible: false, pointMarkersVisible: false, priceFormat };
  };
  const pts = function (lane, k) {
    const out = [];
    for (let i = 0; i < lane.length; i++) {
      const p = lane[i];
      if (p[k] === null) continue;
      out.push(i % 2 ? { time: p[0], value: p[k], color: "rgba(0,0,0,0)" } : { time: p[0], value: p[k] });
    }
    return out;
  };
  for (const lane of D.lanes) {
    const tp = pts(lane, 1), sl = pts(lane, 2);
    if (tp.length) chart.addSeries(LC.LineSeries, seg(T.tp), 0).setData(tp);
    if (sl.length) chart.addSeries(LC.LineSeries, seg(T.sl), 0).setData(sl);
  }

  const markers = [];
  for (const t of D.trades) {
    const color = t.pp === null ? T.flat : (t.pp > 0 ? T.win : T.loss);
    const long = t.side === "long";
    markers.push({ time: t.eb, position: long ? "belowBar" : "aboveBar", shape: long ? "arrowUp" : "arrowDown",
      color, text: long ? "L" : "S", id: "e" + t.n });
    if (!t.open) {
      markers.push({ time: t.xb, position: long ? "aboveBar" : "belowBar", shape: "circle", color,
        text: t.r + (t.pp === null ? "" : " " + BK.pct(t.pp)), id: "x" + t.n });
    }
  }
  markers.sort(function (a, b) { return a.time - b.time; });
  const markerApi = LC.createSeriesMarkers(candles, markers);
  // Labels only help when few trades are in view; over years of trades they would bury the candles.
  const bare = markers.map(function (m) { const c = Object.assign({}, m); delete c.text; return c; });
  let labelled = true;
  const firstAtOrAfter = function (s) {
    let lo = 0, hi = markers.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (markers[mid].time < s) lo = mid + 1; else hi = mid; }
    return lo;
  };
  const relabel = function (range) {
    if (!range || !n) return;
    const a = B.t[Math.max(0, Math.min(n - 1, Math.floor(range.from)))];
    const b = B.t[Math.max(0, Math.min(n - 1, Math.ceil(range.to)))];
    const want = firstAtOrAfter(b + 1) - firstAtOrAfter(a) <= D.maxLabels;
    if (want !== labelled) { labelled = want; markerApi.setMarkers(want ? markers : bare); }
  };
  chart.timeScale().subscribeVisibleLogicalRangeChange(relabel);

  let equityPoints = 0;
  if (D.equity) {
    const E = D.equity;
    equityPoints = E.t.length;
    const eq = chart.addSeries(LC.AreaSeries, {
      lineColor: T.equity, topColor: "rgba(41,98,255,0.30)", bottomColor: "rgba(41,98,255,0.02)", lineWidth: 2,
      priceLineVisible: false, title: "Equity",
    }, 1);
    eq.setData(E.t.map(function (s, i) { return { time: s, value: E.v[i] }; }));
    const dd = chart.addSeries(LC.BaselineSeries, {
      baseValue: { type: "price", price: 0 }, topLineColor: T.loss, topFillColor1: "rgba(0,0,0,0)",
      topFillColor2: "rgba(0,0,0,0)", bottomLineColor: T.loss, bottomFillColor1: "rgba(244,63,94,0.05)",
      bottomFillColor2: "rgba(244,63,94,0.35)", lineWidth: 1, priceLineVisible: false,
      title: E.ddPct ? "Drawdown %" : "Drawdown",
      priceFormat: { type: "price", precision: 2, minMove: 0.01 },
    }, 2);
    dd.setData(E.t.map(function (s, i) { return { time: s, value: E.dd[i] }; }));
    const panes = chart.panes();
    panes[0].setStretchFactor(4);
    if (panes[1]) panes[1].setStretchFactor(1.5);
    if (panes[2]) panes[2].setStretchFactor(1);
  }
  chart.timeScale().fitContent();
  relabel(chart.timeScale().getVisibleLogicalRange());

  // Legend: OHLCV of the bar under the crosshair, else of the last bar.
  const legend = document.getElementById("legend-values");
  const show = function (i) {
    if (i < 0 || i >= n) { legend.textContent = ""; return; }
    const f = function (v) { return v.toFixed(D.price.precision); };
    const chg = B.o[i] ? (B.c[i] / B.o[i] - 1) * 100 : 0;
    legend.textContent = "O " + f(B.o[i]) + "  H " + f(B.h[i]) + "  L " + f(B.l[i]) + "  C " + f(B.c[i]) +
      "  " + BK.pct(chg) + "  V " + B.v[i].toPrecision(4);
  };
  const barAt = function (s) {
    let lo = 0, hi = n - 1;
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (B.t[mid] <= s) lo = mid; else hi = mid - 1; }
    return lo;
  };
  chart.subscribeCrosshairMove(function (p) { show(p && p.time !== undefined ? barAt(p.time) : n - 1); });
  show(n - 1);

  // Trade table: built from the data (textContent keeps every string inert), sortable, click zooms the chart.
  const tbody = document.querySelector("#trades tbody");
  const frag = document.createDocumentFragment();
  const pf = function (v) { return BK.num(v, D.price.precision); };
  for (const t of D.trades) {
    const tr = document.createElement("tr");
    tr.className = "clickable";
    tr.dataset.eb = t.eb; tr.dataset.xb = t.xb;
    BK.cell(tr, String(t.n), t.n, "n");
    const side = BK.cell(tr, "", t.side);
    const tag = document.createElement("span");
    tag.className = "tag " + t.side; tag.textContent = t.side;
    side.appendChild(tag);
    BK.cell(tr, BK.utc(t.ot), t.ot);
    BK.cell(tr, t.open ? "open" : BK.utc(t.ct), t.ct, t.open ? "muted" : "");
    BK.cell(tr, pf(t.po), t.po, "n");
    BK.cell(tr, pf(t.pc), t.pc, "n");
    BK.cell(tr, pf(t.tp), t.tp, "n");
    BK.cell(tr, pf(t.sl), t.sl, "n");
    BK.cell(tr, t.r, t.r);
    const cls = t.pp === null ? "n" : (t.pp > 0 ? "n pos" : (t.pp < 0 ? "n neg" : "n"));
    BK.cell(tr, BK.pct(t.pp), t.pp, cls);
    BK.cell(tr, BK.num(t.pm, 2), t.pm, cls);
    frag.appendChild(tr);
  }
  tbody.appendChild(frag);
  BK.sortable(document.getElementById("trades"));
  tbody.addEventListener("click", function (ev) {
    const tr = ev.target.closest("tr");
    if (!tr) return;
    const a = barAt(Number(tr.dataset.eb)), b = barAt(Number(tr.dataset.xb));
    const pad = Math.max(30, (b - a) * 2);
    chart.timeScale().setVisibleLogicalRange({ from: a - pad, to: b + pad });
    document.getElementById("chart-card").scrollIntoView({ behavior: "smooth", block: "start" });
  });

  BK.done({ markers: markers.length, trades: D.trades.length, bars: n, interval: D.interval,
    equityPoints, lanes: D.lanes.length, droppedSegments: D.droppedSegments,
    get labelled() { return labelled; } });
});
"""

COMPARISON_JS = r"""
BK.run(function () {
  const D = JSON.parse(document.getElementById("bk-data").textContent);
  const LC = window.LightweightCharts;
  const palette = ["#2962ff", "#22c55e", "#f59e0b", "#e11d48", "#a855f7", "#06b6d4", "#84cc16", "#f97316",
    "#ec4899", "#14b8a6", "#eab308", "#8b5cf6"];
  let points = 0, chart = null;
  const legend = document.getElementById("curve-legend");
  if (D.curves.length) {
    chart = LC.createChart(document.getElementById("chart"), BK.chartOptions(LC));
    D.curves.forEach(function (c, k) {
      const color = palette[k % palette.length];
      const s = chart.addSeries(LC.LineSeries, { color, lineWidth: 2, priceLineVisible: false, title: c.name });
      s.setData(c.t.map(function (t, i) { return { time: t, value: c.v[i] }; }));
      points += c.t.length;
      const b = document.createElement("button");
      const dot = document.createElement("i");
      dot.style.background = color;
      b.appendChild(dot);
      b.appendChild(document.createTextNode(c.name));
      b.addEventListener("click", function () {
        const hidden = b.classList.toggle("off");
        s.applyOptions({ visible: !hidden });
      });
      legend.appendChild(b);
    });
    chart.timeScale().fitContent();
  }
  for (const t of document.querySelectorAll("table.sortable")) BK.sortable(t);
  BK.done({ curves: D.curves.length, points, metrics: D.metrics, heatmapCells: D.heatmapCells });
});
"""
