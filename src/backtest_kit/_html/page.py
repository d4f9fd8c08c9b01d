"""The HTML shell shared by the report pages: inlined chart library, theme, safe JSON embedding, table sorting."""

from __future__ import annotations

import html
import json
from functools import lru_cache
from importlib import resources
from typing import Any

from backtest_kit.errors import BacktestKitError

VENDOR_JS = "lightweight-charts.standalone.production.js"


@lru_cache(maxsize=1)
def vendor_js() -> str:
    """The vendored lightweight-charts standalone build (defines window.LightweightCharts)."""
    path = resources.files("backtest_kit._html").joinpath("vendor", VENDOR_JS)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:  # a wheel built without the package data
        raise BacktestKitError(f"HTML reports need {VENDOR_JS} in backtest_kit/_html/vendor/") from exc
    # Inlined into a <script> element, so it must never close it early.
    if "</script" in text.lower():
        raise BacktestKitError(f"{VENDOR_JS} contains '</script' and cannot be inlined")
    return text


@lru_cache(maxsize=1)
def vendor_version() -> str:
    """The pinned npm version of the vendored chart library."""
    return resources.files("backtest_kit._html").joinpath("vendor", "VERSION").read_text(encoding="utf-8").strip()


def embed_json(data: Any) -> str:
    """Compact JSON safe inside <script type="application/json">: no '<', '>' or '&' can end the element."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def esc(value: object) -> str:
    """HTML-escape any user-provided value (quotes included, so it is safe in attributes too)."""
    return html.escape(str(value), quote=True)


CSS = """
:root{--bg:#0b0e14;--card:#131722;--line:#2a2e39;--text:#d1d4dc;--muted:#868993;--accent:#2962ff;
--win:#26a69a;--loss:#ef5350;color-scheme:dark}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1480px;margin:0 auto;padding:20px 24px 32px}
header h1{margin:0 0 4px;font-size:22px;font-weight:600;letter-spacing:.2px}
.sub{color:var(--muted);font-size:13px}
.sub b{color:var(--text);font-weight:500}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;margin-top:16px;padding:14px 16px}
section h2{margin:0 0 10px;font-size:15px;font-weight:600}
section h2 small{color:var(--muted);font-weight:400;margin-left:6px}
.chart-wrap{position:relative;height:var(--h,640px);padding:0;overflow:hidden}
.chart{position:absolute;inset:0}
.legend{position:absolute;left:12px;top:8px;z-index:3;pointer-events:none;font-size:12px;color:var(--muted)}
.legend b{color:var(--text);font-size:13px;margin-right:8px}
.legend .v{color:var(--text);margin-right:8px;font-variant-numeric:tabular-nums}
.keys{display:flex;gap:14px;flex-wrap:wrap;font-size:12px;color:var(--muted);margin-top:8px}
.keys i{display:inline-block;width:14px;height:3px;vertical-align:middle;margin-right:5px;border-radius:2px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:5px 10px;text-align:left;white-space:nowrap}
td.n,th.n{text-align:right}
.stats td{border-bottom:1px solid var(--line)}
.stats td.k{color:var(--muted)}
.stats td.val{font-weight:500;padding-right:28px}
.scroll{max-height:560px;overflow:auto;border:1px solid var(--line);border-radius:6px}
.grid thead th{position:sticky;top:0;background:#1c2030;color:var(--muted);font-weight:500;font-size:12px;
text-transform:uppercase;letter-spacing:.4px;cursor:pointer;user-select:none;border-bottom:1px solid var(--line)}
.grid thead th:hover{color:var(--text)}
.grid thead th[aria-sort=ascending]::after{content:" \\25B2";font-size:9px}
.grid thead th[aria-sort=descending]::after{content:" \\25BC";font-size:9px}
.grid tbody tr{border-bottom:1px solid #1f2330}
.grid tbody tr:nth-child(even){background:#161a25}
.grid tbody tr:hover{background:#1e2433}
.grid tbody tr.clickable{cursor:pointer}
.pos{color:var(--win)}.neg{color:var(--loss)}.muted{color:var(--muted)}
.tag{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;line-height:18px}
.tag.long{background:rgba(38,166,154,.15);color:var(--win)}
.tag.short{background:rgba(239,83,80,.15);color:var(--loss)}
.bar{height:10px;border-radius:3px;min-width:1px}
.heat td,.heat th{text-align:center;padding:6px 8px;border:1px solid var(--bg)}
.heat th{color:var(--muted);font-weight:500}
.heat td{color:#fff;text-shadow:0 0 3px rgba(0,0,0,.6)}
.axis{color:var(--muted);font-size:12px;margin-bottom:6px}
.legend-list{display:flex;gap:8px 16px;flex-wrap:wrap;margin:0 0 8px;font-size:13px}
.legend-list button{background:none;border:1px solid var(--line);color:var(--text);border-radius:12px;
padding:2px 10px;cursor:pointer;font:inherit}
.legend-list button.off{opacity:.4}
.legend-list i{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:6px}
footer{color:var(--muted);font-size:12px;margin-top:14px}
footer a{color:var(--muted)}
"""

# Shared page helpers: UTC formatting and a header-click sorter over data-v cell keys.
COMMON_JS = r"""
"use strict";
const BK = {};
BK.utc = function (s) {
  if (s === null || s === undefined) return "";
  return new Date(s * 1000).toISOString().slice(0, 16).replace("T", " ");
};
BK.num = function (v, d) { return v === null || v === undefined ? "" : Number(v).toFixed(d); };
BK.pct = function (v) { return v === null || v === undefined ? "" : (v > 0 ? "+" : "") + v.toFixed(2) + "%"; };
BK.cell = function (tr, text, key, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  td.dataset.v = key === null || key === undefined ? "" : String(key);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
};
BK.sortable = function (table) {
  const ths = table.tHead.rows[0].cells;
  for (let c = 0; c < ths.length; c++) {
    ths[c].addEventListener("click", function () {
      const th = ths[c];
      const asc = th.getAttribute("aria-sort") !== "ascending";
      for (const h of ths) h.removeAttribute("aria-sort");
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      const num = th.dataset.type === "num";
      const dir = asc ? 1 : -1;
      const body = table.tBodies[0];
      const rows = Array.from(body.rows);
      rows.sort(function (a, b) {
        const x = a.cells[c].dataset.v, y = b.cells[c].dataset.v;
        // Empty keys (no value) always go last, whatever the direction.
        if (x === "" || y === "") return (x === "") - (y === "");
        if (num) return (Number(x) - Number(y)) * dir;
        return x.localeCompare(y) * dir;
      });
      const frag = document.createDocumentFragment();
      for (const r of rows) frag.appendChild(r);
      body.appendChild(frag);
    });
  }
};
BK.theme = {
  bg: "#131722", text: "#d1d4dc", grid: "#1f2330", border: "#2a2e39",
  up: "#26a69a", down: "#ef5350", upA: "rgba(38,166,154,0.45)", downA: "rgba(239,83,80,0.45)",
  win: "#22c55e", loss: "#f43f5e", flat: "#9ca3af", tp: "#22c55e", sl: "#f43f5e", equity: "#2962ff",
};
BK.chartOptions = function (LC) {
  const t = BK.theme;
  return {
    autoSize: true,
    layout: {
      background: { type: "solid", color: t.bg }, textColor: t.text, fontSize: 12,
      fontFamily: "system-ui, -apple-system, Segoe UI, Roboto, Arial, sans-serif",
      panes: { separatorColor: t.border, separatorHoverColor: "rgba(41,98,255,0.25)", enableResize: true },
    },
    grid: { vertLines: { color: t.grid }, horzLines: { color: t.grid } },
    crosshair: { mode: LC.CrosshairMode.Normal },
    rightPriceScale: { borderColor: t.border },
    // A small minimum bar spacing lets fitContent show the whole period (up to max_bars) at first.
    timeScale: { borderColor: t.border, timeVisible: true, secondsVisible: false, minBarSpacing: 0.05 },
  };
};
BK.done = function (info) {
  // Two frames: lightweight-charts paints on the next animation frame after setData.
  requestAnimationFrame(function () {
    requestAnimationFrame(function () { info.ready = true; window.__bk = info; });
  });
};
BK.run = function (main) {
  try { main(); } catch (e) { window.__bk = { ready: false, error: String(e && e.stack || e) }; throw e; }
};
"""


def document(*, title: str, body: str, data: Any, script: str) -> str:
    """A complete self-contained page: theme, inlined chart library, embedded JSON data and the page script."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<meta name=\"generator\" content=\"backtest-kit (lightweight-charts {esc(vendor_version())})\">\n"
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n"
        "<footer>Generated by backtest-kit. Charts: TradingView Lightweight Charts&trade; "
        f"{esc(vendor_version())} (Apache-2.0), inlined.</footer>\n</main>\n"
        f"<script id=\"bk-data\" type=\"application/json\">{embed_json(data)}</script>\n"
        f"<script>\n{vendor_js()}\n</script>\n"
        f"<script>\n{COMMON_JS}\n{script}\n</script>\n</body>\n</html>\n"
    )
