"""Self-contained HTML report pages over plain data: a backtest page and a Walker/Sweep comparison page."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from backtest_kit._html.aggregate import (
    Bars,
    Floats,
    Ints,
    aggregate_ohlcv,
    drawdown,
    grid_for,
    series_on_grid,
    snap,
)
from backtest_kit._html.page import document, esc
from backtest_kit._html.scripts import BACKTEST_JS, COMPARISON_JS
from backtest_kit.errors import ValidationError

Curve = tuple[ArrayLike, ArrayLike]
Heatmap = tuple[str, str, Sequence[Any], Sequence[Any], ArrayLike]
MAX_LANES = 8  # bounds the TP/SL line series when many trades overlap
MAX_LABELS = 80  # marker texts are shown only while at most this many markers are in view
STATS_PER_ROW = 3


@dataclass(frozen=True)
class _Trade:
    n: int
    side: str
    open_ms: int
    close_ms: int | None
    price_open: float | None
    price_close: float | None
    take_profit: float | None
    stop_loss: float | None
    reason: str
    pnl_pct: float | None
    pnl_money: float | None


def _opt_float(value: Any) -> float | None:
    if value is None:
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def _parse_trade(n: int, raw: Mapping[str, Any]) -> _Trade:
    side = str(raw.get("side", "")).lower()
    if side not in ("long", "short"):
        raise ValidationError(f"trade #{n}: side must be 'long' or 'short', got {raw.get('side')!r}")
    if raw.get("open_ts") is None:
        raise ValidationError(f"trade #{n}: open_ts is required")
    close_ts = raw.get("close_ts")
    reason = raw.get("close_reason")
    try:
        return _Trade(
            n=n,
            side=side,
            open_ms=int(raw["open_ts"]),
            close_ms=None if close_ts is None else int(close_ts),
            price_open=_opt_float(raw.get("price_open")),
            price_close=_opt_float(raw.get("price_close")),
            take_profit=_opt_float(raw.get("take_profit")),
            stop_loss=_opt_float(raw.get("stop_loss")),
            reason="" if reason is None else str(reason),
            pnl_pct=_opt_float(raw.get("pnl_pct")),
            pnl_money=_opt_float(raw.get("pnl_money")),
        )
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"trade #{n}: {exc}") from exc


def _decimals_for(magnitude: float, significant: int, lo: int, hi: int) -> int:
    """Decimal places that keep `significant` digits of a value of this magnitude."""
    if not math.isfinite(magnitude) or magnitude <= 0:
        return lo
    return max(lo, min(hi, significant - 1 - math.floor(math.log10(magnitude))))


def _rounded(values: Floats, decimals: int) -> list[float]:
    # Rounding to a fixed number of decimals keeps every JSON float short (no 17-digit reprs).
    out: list[float] = np.round(values, decimals).tolist()
    return out


def _seconds(ms: Ints) -> list[int]:
    out: list[int] = (ms // 1000).tolist()
    return out


def _round_opt(value: float | None, decimals: int) -> float | None:
    return None if value is None else round(value, decimals)


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _lanes(
    spans: list[tuple[int, int, float | None, float | None]], bar_s: list[int]
) -> tuple[list[list[list[Any]]], int]:
    """Pack TP/SL segments (bar index spans) into few line series; returns the lanes and the segments dropped.

    A lane is one line series holding [time, tp, sl] start/end pairs, so its times must strictly increase:
    a trade joins the first lane whose last segment ended before its entry bar.
    """
    n = len(bar_s)
    lanes: list[list[list[Any]]] = []
    ends: list[int] = []
    dropped = 0
    for start, end, tp, sl in sorted(spans, key=lambda s: (s[0], s[1])):
        if tp is None and sl is None:
            continue
        s, e = start, max(start, end)
        if e == s:  # entry and exit in one bar: widen so the segment is visible
            if e + 1 < n:
                e += 1
            elif s > 0:
                s -= 1
            else:
                dropped += 1
                continue
        k = next((i for i, last in enumerate(ends) if s > last), len(ends))
        if k == len(ends):
            if len(ends) >= MAX_LANES:
                dropped += 1
                continue
            lanes.append([])
            ends.append(-1)
        lanes[k].extend([[bar_s[s], tp, sl], [bar_s[e], tp, sl]])
        ends[k] = e
    return lanes, dropped


def _equity_payload(equity: Curve | None, bars: Bars, max_bars: int) -> dict[str, Any] | None:
    if equity is None:
        return None
    ts = np.asarray(equity[0], dtype=np.int64).reshape(-1)
    vals = np.asarray(equity[1], dtype=np.float64).reshape(-1)
    if ts.size != vals.size:
        raise ValidationError(f"equity has {ts.size} timestamps but {vals.size} values")
    keep = np.isfinite(vals)
    ts, vals = ts[keep], vals[keep]
    order = np.argsort(ts, kind="stable")
    ts, vals = ts[order], vals[order]
    # Drawdown comes from the full-resolution curve so down-sampling cannot hide the worst dip.
    dd, dd_pct = drawdown(vals)
    grid = bars.time_ms if len(bars) else grid_for(ts, max_bars)
    t_out, v_out = series_on_grid(grid, ts, vals, "last")
    _, dd_out = series_on_grid(grid, ts, dd, "min")
    decimals = _decimals_for(float(np.max(np.abs(v_out))) if v_out.size else 0.0, 8, 2, 10)
    return {"t": _seconds(t_out), "v": _rounded(v_out, decimals), "dd": _rounded(dd_out, 4), "ddPct": dd_pct}


def _stats_table(stats: Sequence[tuple[str, str]]) -> str:
    if not stats:
        return '<p class="muted">No statistics.</p>'
    rows = []
    for i in range(0, len(stats), STATS_PER_ROW):
        chunk = stats[i : i + STATS_PER_ROW]
        cells = "".join(f'<td class="k">{esc(label)}</td><td class="val">{esc(value)}</td>' for label, value in chunk)
        rows.append(f"<tr>{cells}</tr>")
    return f'<table class="stats">{"".join(rows)}</table>'


_TRADE_COLUMNS = (
    ("#", "num"), ("Side", "str"), ("Opened (UTC)", "num"), ("Closed (UTC)", "num"), ("Entry", "num"),
    ("Exit", "num"), ("Take profit", "num"), ("Stop loss", "num"), ("Reason", "str"), ("PnL %", "num"),
    ("PnL", "num"),
)


def render_backtest_html(
    *,
    title: str,
    symbol: str,
    candles: Mapping[str, ArrayLike],
    trades: Sequence[Mapping[str, Any]],
    equity: Curve | None,
    stats: Sequence[tuple[str, str]],
    max_bars: int = 5000,
) -> str:
    """One self-contained HTML page: candles with trades, equity/drawdown panes, statistics, sortable trades.

    `candles` holds numpy-compatible columns timestamp (ms), open, high, low, close, volume; they are aggregated
    to the smallest of 1m..1w that gives at most `max_bars` bars, and markers/equity are snapped to those bars.
    """
    bars = aggregate_ohlcv(candles, max_bars)
    parsed = [_parse_trade(i + 1, t) for i, t in enumerate(trades)]
    n_bars = len(bars)
    ref = float(np.median(bars.close)) if n_bars else next((t.price_open for t in parsed if t.price_open), 0.0)
    precision = _decimals_for(ref or 0.0, 5, 2, 10)
    keep = precision + 2
    vol_decimals = _decimals_for(float(bars.volume.max()) if n_bars else 0.0, 4, 0, 8)
    bar_s = _seconds(bars.time_ms)

    open_idx = snap(bars.time_ms, [t.open_ms for t in parsed]).tolist()
    last_ms = int(bars.time_ms[-1]) if n_bars else 0
    close_idx = snap(bars.time_ms, [last_ms if t.close_ms is None else t.close_ms for t in parsed]).tolist()
    trade_rows: list[dict[str, Any]] = []
    spans: list[tuple[int, int, float | None, float | None]] = []
    for t, a, b in zip(parsed, open_idx, close_idx, strict=True):
        # Without bars there is nothing to snap to; raw times still give the table its values.
        eb = bar_s[a] if n_bars else t.open_ms // 1000
        xb = bar_s[b] if n_bars else (t.close_ms or t.open_ms) // 1000
        trade_rows.append({
            "n": t.n, "side": t.side, "open": t.close_ms is None,
            "ot": t.open_ms // 1000, "ct": None if t.close_ms is None else t.close_ms // 1000,
            "eb": eb, "xb": xb,
            "po": _round_opt(t.price_open, keep), "pc": _round_opt(t.price_close, keep),
            "tp": _round_opt(t.take_profit, keep), "sl": _round_opt(t.stop_loss, keep),
            "r": t.reason, "pp": _round_opt(t.pnl_pct, 4), "pm": _round_opt(t.pnl_money, 4),
        })
        if n_bars:
            spans.append((a, b, _round_opt(t.take_profit, keep), _round_opt(t.stop_loss, keep)))
    lanes, dropped = _lanes(spans, bar_s)
    equity_data = _equity_payload(equity, bars, max_bars)

    data = {
        "interval": bars.interval,
        "price": {"precision": precision, "minMove": 10.0**-precision},
        "bars": {
            "t": bar_s,
            "o": _rounded(bars.open, keep), "h": _rounded(bars.high, keep),
            "l": _rounded(bars.low, keep), "c": _rounded(bars.close, keep),
            "v": _rounded(bars.volume, vol_decimals),
        },
        "maxLabels": MAX_LABELS, "trades": trade_rows, "lanes": lanes, "droppedSegments": dropped,
        "equity": equity_data,
    }
    period = f"{_utc(int(bars.time_ms[0]))} &rarr; {_utc(last_ms)} UTC" if n_bars else "no candles"
    closed = sum(1 for t in parsed if t.close_ms is not None)
    height = 760 if equity_data else 560
    head = "".join(
        f'<th data-type="{kind}"{" class=n" if kind == "num" and name not in ("Opened (UTC)", "Closed (UTC)") else ""}>'
        f"{esc(name)}</th>"
        for name, kind in _TRADE_COLUMNS
    )
    body = f"""<header><h1>{esc(title)}</h1>
<div class="sub"><b>{esc(symbol)}</b> &middot; {esc(bars.interval)} bars ({n_bars:,}) &middot; {period}
&middot; {closed:,} closed trade{'' if closed == 1 else 's'}</div></header>
<section id="chart-card" class="chart-wrap" style="--h:{height}px"><div id="chart" class="chart"></div>
<div class="legend"><b>{esc(symbol)}</b><span class="v">{esc(bars.interval)}</span>
<span id="legend-values" class="v"></span></div></section>
<div class="keys"><span><i style="background:#22c55e"></i>win</span><span><i style="background:#f43f5e"></i>loss</span>
<span>&#9650;/&#9660; entry &middot; &#9679; exit</span>
<span><i style="background:repeating-linear-gradient(90deg,#22c55e 0 4px,transparent 4px 7px)"></i>take profit</span>
<span><i style="background:repeating-linear-gradient(90deg,#f43f5e 0 4px,transparent 4px 7px)"></i>stop loss</span>
{'<span><i style="background:#2962ff"></i>equity</span><span><i style="background:#f43f5e"></i>drawdown</span>'
 if equity_data else ''}</div>
<section><h2>Statistics</h2>{_stats_table(stats)}</section>
<section><h2>Trades <small>{len(parsed):,} &middot; click a header to sort, a row to zoom</small></h2>
<div class="scroll"><table id="trades" class="grid"><thead><tr>{head}</tr></thead><tbody></tbody></table></div>
</section>"""
    return document(title=title, body=body, data=data, script=BACKTEST_JS)


def _fmt(value: Any) -> str:
    """Display form of a table value: numbers get a width-stable format, the rest str()."""
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        v = float(value)
        if not math.isfinite(v):
            return "—"
        if abs(v) >= 1000:
            return f"{v:,.2f}"
        if v == 0 or abs(v) >= 0.01:
            return f"{v:.4f}"
        return f"{v:.4g}"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)


def _sort_key(value: Any) -> str:
    if value is None:
        return ""
    if _is_number(value):
        v = float(value)
        return repr(v) if math.isfinite(v) else ""
    return str(value)


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> str:
    r, g, bl = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return f"rgb({r},{g},{bl})"


_NEUTRAL = (42, 46, 57)
_GOOD = (22, 163, 74)
_BAD = (220, 38, 38)


def _heat_color(value: float, lo: float, hi: float) -> str:
    """Green for better, red for worse: around zero when signs mix, else around the middle of the range."""
    if lo < 0 < hi:
        t = value / max(abs(lo), abs(hi))
    else:
        t = 0.0 if hi == lo else 2 * (value - lo) / (hi - lo) - 1
    return _mix(_NEUTRAL, _GOOD, t) if t >= 0 else _mix(_NEUTRAL, _BAD, -t)


def _heatmap_html(heatmap: Heatmap, lower_is_better: bool = False) -> tuple[str, int]:
    x_name, y_name, x_values, y_values, raw = heatmap
    grid = np.asarray(raw, dtype=np.float64)
    if grid.shape != (len(y_values), len(x_values)):
        raise ValidationError(
            f"heatmap values must have shape (len(y_values), len(x_values)) = ({len(y_values)}, {len(x_values)}),"
            f" got {grid.shape}"
        )
    finite = grid[np.isfinite(grid)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    head = "".join(f"<th>{esc(_fmt(x))}</th>" for x in x_values)
    rows = []
    for i, y in enumerate(y_values):
        cells = []
        for j, x in enumerate(x_values):
            v = float(grid[i, j])
            tip = esc(f"{x_name}={_fmt(x)}, {y_name}={_fmt(y)}: {_fmt(v)}")
            if math.isfinite(v):
                top = v == (lo if lower_is_better else hi)
                best = " style=\"font-weight:700;outline:2px solid #fff;outline-offset:-2px;" if top else ' style="'
                color = _heat_color(-v, -hi, -lo) if lower_is_better else _heat_color(v, lo, hi)
                cells.append(f'<td title="{tip}"{best}background:{color}">{esc(_fmt(v))}</td>')
            else:
                cells.append(f'<td title="{tip}" class="muted">&mdash;</td>')
        rows.append(f"<tr><th>{esc(_fmt(y))}</th>{''.join(cells)}</tr>")
    table = (
        f'<div class="axis">rows: <b>{esc(y_name)}</b> &middot; columns: <b>{esc(x_name)}</b></div>'
        f'<div class="scroll"><table class="heat"><thead><tr><th>{esc(y_name)} \\ {esc(x_name)}</th>{head}</tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></div>"
    )
    return table, int(grid.size)


def _metrics_html(metric_name: str, metrics: Mapping[str, float | None], lower_is_better: bool = False) -> str:
    items = [(str(k), _opt_float(v)) for k, v in metrics.items()]
    sign = 1.0 if lower_is_better else -1.0
    items.sort(key=lambda kv: (kv[1] is None, sign * (kv[1] or 0.0)))
    top = max((abs(v) for _, v in items if v is not None), default=0.0)
    rows = []
    for rank, (name, v) in enumerate(items, 1):
        if v is None:
            bar = ""
        else:
            width = 0.0 if top == 0 else abs(v) / top * 100
            color = "var(--win)" if v >= 0 else "var(--loss)"
            bar = f'<div class="bar" style="width:{width:.1f}%;background:{color}"></div>'
        cls = "n pos" if v is not None and v > 0 else "n neg" if v is not None and v < 0 else "n"
        rows.append(
            f'<tr><td class="n" data-v="{rank}">{rank}</td><td data-v="{esc(name)}">{esc(name)}</td>'
            f'<td class="{cls}" data-v="{_sort_key(v)}">{esc(_fmt(v)) if v is not None else "&mdash;"}</td>'
            f'<td style="width:45%" data-v="{_sort_key(v)}">{bar}</td></tr>'
        )
    return (
        '<table class="grid sortable" id="metrics"><thead><tr><th data-type="num" class="n">Rank</th>'
        f'<th data-type="str">Strategy</th><th data-type="num" class="n">{esc(metric_name)}</th>'
        f'<th data-type="num"></th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _rows_html(stats_rows: Sequence[Mapping[str, Any]]) -> str:
    columns: list[str] = []
    for row in stats_rows:
        columns.extend(str(k) for k in row if str(k) not in columns)
    numeric = {
        c: all(_is_number(r.get(c)) for r in stats_rows if r.get(c) is not None) for c in columns
    }
    head = "".join(
        f'<th data-type="{"num" if numeric[c] else "str"}"{" class=n" if numeric[c] else ""}>{esc(c)}</th>'
        for c in columns
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td{" class=n" if numeric[c] else ""} data-v="{esc(_sort_key(r.get(c)))}">{esc(_fmt(r.get(c)))}</td>'
            for c in columns
        )
        + "</tr>"
        for r in stats_rows
    )
    return (
        f'<div class="scroll"><table class="grid sortable" id="stats-rows"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def render_comparison_html(
    *,
    title: str,
    curves: Mapping[str, Curve],
    metric_name: str,
    metrics: Mapping[str, float | None],
    heatmap: Heatmap | None = None,
    stats_rows: Sequence[Mapping[str, Any]] = (),
    max_points: int = 2000,
    lower_is_better: bool = False,
) -> str:
    """One self-contained HTML page comparing strategies: overlaid equity curves, the metric ranking,
    an optional parameter heatmap `(x_name, y_name, x_values, y_values, values[len(y), len(x)])`, a stats table.
    """
    parsed: list[tuple[str, Ints, Floats]] = []
    for name, (ts, vals) in curves.items():
        t = np.asarray(ts, dtype=np.int64).reshape(-1)
        v = np.asarray(vals, dtype=np.float64).reshape(-1)
        if t.size != v.size:
            raise ValidationError(f"curve {name!r} has {t.size} timestamps but {v.size} values")
        parsed.append((str(name), t, v))
    # One shared bucket grid: every curve lands on the same times, so the union stays <= max_points.
    grid = grid_for(np.concatenate([t for _, t, _ in parsed]) if parsed else np.zeros(0, np.int64), max_points)
    curve_data = []
    for name, t, v in parsed:
        t_out, v_out = series_on_grid(grid, t, v, "last")
        decimals = _decimals_for(float(np.max(np.abs(v_out))) if v_out.size else 0.0, 8, 2, 10)
        curve_data.append({"name": name, "t": _seconds(t_out), "v": _rounded(v_out, decimals)})
    heat_html, cells = _heatmap_html(heatmap, lower_is_better) if heatmap is not None else ("", 0)
    sections = [
        f"<header><h1>{esc(title)}</h1><div class=\"sub\">{len(parsed)} equity curve{'' if len(parsed) == 1 else 's'}"
        f" &middot; ranked by <b>{esc(metric_name)}</b></div></header>",
        '<section><h2>Equity curves <small>click a name to hide or show it</small></h2>'
        '<div id="curve-legend" class="legend-list"></div>'
        '<div class="chart-wrap" style="--h:440px"><div id="chart" class="chart"></div></div></section>'
        if parsed else "",
        f"<section><h2>{esc(metric_name)} <small>per strategy</small></h2>"
        f"{_metrics_html(metric_name, metrics, lower_is_better)}</section>",
        f"<section><h2>Parameter heatmap <small>{esc(heatmap[0])} &times; {esc(heatmap[1])}</small></h2>"
        f"{heat_html}</section>" if heatmap is not None else "",
        f"<section><h2>Statistics <small>{len(stats_rows)} rows</small></h2>{_rows_html(stats_rows)}</section>"
        if stats_rows else "",
    ]
    data = {"curves": curve_data, "metrics": len(metrics), "heatmapCells": cells}
    return document(title=title, body="\n".join(s for s in sections if s), data=data, script=COMPARISON_JS)
