"""HTML report renderer: numpy aggregation, safe embedding, and the real pages in headless Chromium.

The browser tests skip without Chromium + Playwright (apt-get install -y chromium; pip install playwright),
except under CI=true where they fail. BK_WRITE_SCREENSHOT=1 also writes docs/report.png and docs/comparison.png.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backtest_kit._html import render_backtest_html, render_comparison_html
from backtest_kit._html.aggregate import WEEK_MS, aggregate_ohlcv, bucket, choose_interval, series_on_grid
from backtest_kit._html.page import embed_json
from backtest_kit._html.render import _lanes
from backtest_kit.errors import ValidationError
from helpers.browser import Browser, PageLog, browser, canvas_stats, save_screenshot

M = 60_000
DAY = 1440
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a Monday
HOSTILE_TITLE = '<i class="pwn">SMA</i> cross & "friends" </script>'
HOSTILE_REASON = '</script><b class="pwn">x</b>'


# ---------------------------------------------------------------- synthetic market


def make_candles(minutes: int, seed: int = 7, start: float = 42_000.0) -> dict[str, np.ndarray]:
    """A 1m random walk with plausible wicks and volume."""
    rng = np.random.default_rng(seed)
    ts = T0 + np.arange(minutes, dtype=np.int64) * M
    drift = np.sin(np.arange(minutes) / 900.0) * 0.00012  # slow swings so trades both win and lose
    close = start * np.exp(np.cumsum(rng.normal(0, 0.0008, minutes) + drift))
    open_ = np.r_[start, close[:-1]]
    wick = np.abs(rng.normal(0, 0.0005, minutes)) * close
    return {
        "timestamp": ts,
        "open": open_,
        "high": np.maximum(open_, close) + wick,
        "low": np.minimum(open_, close) - wick,
        "close": close,
        "volume": rng.gamma(2.0, 6.0, minutes),
    }


def make_trades(c: dict[str, np.ndarray], n: int, seed: int = 3, reason: str | None = None) -> list[dict[str, Any]]:
    """`n` sequential trades that really hit TP/SL on the candles (else expire after 6h)."""
    rng = np.random.default_rng(seed)
    size = c["timestamp"].size
    gap = max(30, size // (n + 1))
    trades: list[dict[str, Any]] = []
    i = 60
    while len(trades) < n and i < size - 2:
        side = "long" if len(trades) % 3 != 1 else "short"
        sign = 1 if side == "long" else -1
        po = float(c["close"][i])
        tp, sl = po * (1 + sign * 0.009), po * (1 - sign * 0.006)
        hi, lo = c["high"][i + 1 : i + 361], c["low"][i + 1 : i + 361]
        hit_tp = np.flatnonzero(hi >= tp) if side == "long" else np.flatnonzero(lo <= tp)
        hit_sl = np.flatnonzero(lo <= sl) if side == "long" else np.flatnonzero(hi >= sl)
        first_tp = hit_tp[0] if hit_tp.size else 10**9
        first_sl = hit_sl[0] if hit_sl.size else 10**9
        if min(first_tp, first_sl) < hi.size:
            k = int(min(first_tp, first_sl))
            why, pc = ("take_profit", tp) if first_tp < first_sl else ("stop_loss", sl)
        else:
            k, why, pc = hi.size - 1, "time_expired", float(c["close"][i + hi.size])
        e = i + 1 + k
        pnl = sign * (pc / po - 1) * 100 - 0.2
        trades.append({
            "open_ts": int(c["timestamp"][i]), "close_ts": int(c["timestamp"][e]), "side": side,
            "price_open": po, "price_close": pc, "take_profit": tp, "stop_loss": sl,
            "close_reason": reason or why, "pnl_pct": pnl, "pnl_money": pnl * 10.0,
        })
        i = e + int(rng.integers(gap // 2, gap * 3 // 2 + 1))
    return trades


def make_equity(c: dict[str, np.ndarray], trades: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Account balance per minute: 10,000 plus realised PnL."""
    ts = c["timestamp"]
    steps = np.zeros(ts.size)
    for t in trades:
        steps[np.searchsorted(ts, t["close_ts"])] += t["pnl_money"]
    return ts, 10_000.0 + np.cumsum(steps)


STATS = [
    ("Total PnL", "+3.12%"), ("Sharpe ratio", "1.84"), ("Win rate", "60.0%"), ("Closed trades", "10"),
    ("Max drawdown", "-1.95%"), ("Avg PnL", "+0.31%"), ("Profit factor", "1.72"), ("Expectancy", "$3.12"),
    ("Certainty ratio", "0.51"),
]


def backtest_page(minutes: int, n_trades: int, **kw: Any) -> tuple[str, list[dict[str, Any]]]:
    c = make_candles(minutes)
    trades = make_trades(c, n_trades, **kw)
    html = render_backtest_html(
        title=HOSTILE_TITLE, symbol="BTCUSDT", candles=c, trades=trades, equity=make_equity(c, trades), stats=STATS
    )
    return html, trades


# ---------------------------------------------------------------- pure Python


def test_aggregates_ohlcv_to_5m() -> None:
    ts = T0 + np.arange(10, dtype=np.int64) * M
    c = {"timestamp": ts, "open": np.arange(10.0) + 1, "high": np.arange(10.0) + 5, "low": np.arange(10.0),
         "close": np.arange(10.0) + 2, "volume": np.ones(10)}
    bars = aggregate_ohlcv(c, max_bars=2)
    assert bars.interval == "5m"
    assert bars.time_ms.tolist() == [T0, T0 + 5 * M]
    assert bars.open.tolist() == [1.0, 6.0]
    assert bars.high.tolist() == [9.0, 14.0]
    assert bars.low.tolist() == [0.0, 5.0]
    assert bars.close.tolist() == [6.0, 11.0]
    assert bars.volume.tolist() == [5.0, 5.0]
    assert aggregate_ohlcv(c, max_bars=10).interval == "1m"


def test_bad_rows_are_dropped_and_unsorted_input_is_sorted() -> None:
    ts = T0 + np.array([2, 0, 1, 3], dtype=np.int64) * M
    c = {"timestamp": ts, "open": [3.0, 1.0, 2.0, np.nan], "high": [3.0, 1.0, 2.0, 9.0],
         "low": [3.0, 1.0, 2.0, 9.0], "close": [3.0, 1.0, 2.0, 9.0], "volume": [1.0, np.nan, 1.0, 1.0]}
    bars = aggregate_ohlcv(c, max_bars=100)
    assert bars.time_ms.tolist() == [T0, T0 + M, T0 + 2 * M]
    assert bars.open.tolist() == [1.0, 2.0, 3.0]
    assert bars.volume.tolist() == [0.0, 1.0, 1.0]


def test_two_years_of_1m_aggregate_to_4h_within_max_bars() -> None:
    ts = T0 + np.arange(2 * 365 * DAY, dtype=np.int64) * M
    assert choose_interval(ts, 5000) == ("4h", 240 * M)
    assert choose_interval(ts, 100)[0] == "1w"
    weeks = np.unique(bucket(ts, WEEK_MS))
    # Weeks start on Monday 00:00 UTC, like exchanges' 1w candles.
    assert all(np.datetime64(int(w), "ms").astype("datetime64[D]").item().weekday() == 0 for w in weeks)


def test_series_on_grid_keeps_last_or_min_per_bar() -> None:
    grid = np.array([0, 10, 20], dtype=np.int64)
    t, v = series_on_grid(grid, [1, 5, 12, 13, 25, -4], [1.0, 2.0, 3.0, 0.5, 7.0, 9.0], "last")
    assert t.tolist() == [0, 10, 20] and v.tolist() == [2.0, 0.5, 7.0]
    _, lows = series_on_grid(grid, [1, 5, 12, 13, 25], [1.0, 2.0, 3.0, 0.5, 7.0], "min")
    assert lows.tolist() == [1.0, 0.5, 7.0]


def test_lanes_keep_segments_apart_and_times_increasing() -> None:
    bar_s = list(range(0, 1000, 10))
    spans = [(5, 9, 1.0, 0.5), (7, 12, 2.0, None), (10, 10, None, 0.2), (13, 20, 1.5, 0.7), (99, 99, 1.0, 1.0)]
    lanes, dropped = _lanes(spans, bar_s)
    assert dropped == 0 and len(lanes) == 2
    for lane in lanes:
        times = [p[0] for p in lane]
        assert times == sorted(times) and len(set(times)) == len(times)
    # A one-bar trade is widened to two bars so its segment is visible.
    assert [980, 990] in [[p[0] for p in lane[i : i + 2]] for lane in lanes for i in range(0, len(lane), 2)]


def test_embedded_json_cannot_close_the_script() -> None:
    data = {"r": "</script><script>alert(1)</script>", "s": "a & b <!-- \u2028", "n": [1, 2.5, None]}
    text = embed_json(data)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == data


def test_page_is_self_contained_and_escapes_user_strings() -> None:
    html, _ = backtest_page(2 * DAY, 6, reason=HOSTILE_REASON)
    assert html.count("<script") == html.count("</script>") == 3
    assert not re.search(r"<(script|img|link|iframe)[^>]+(src|href)=", html)
    assert "@import" not in html and "url(http" not in html
    assert '<i class="pwn">' not in html and '<b class="pwn">' not in html
    assert "&lt;i class=&quot;pwn&quot;&gt;SMA&lt;/i&gt;" in html


def test_invalid_input_is_rejected() -> None:
    c = make_candles(100)
    good = make_trades(c, 1)
    with pytest.raises(ValidationError, match="side"):
        render_backtest_html(title="t", symbol="s", candles=c, trades=[{**good[0], "side": "up"}], equity=None,
                             stats=[])
    with pytest.raises(ValidationError, match="volume"):
        render_backtest_html(title="t", symbol="s", candles={k: v for k, v in c.items() if k != "volume"},
                             trades=[], equity=None, stats=[])
    with pytest.raises(ValidationError, match="shape"):
        render_comparison_html(title="t", curves={}, metric_name="m", metrics={},
                               heatmap=("x", "y", [1, 2], [1, 2, 3], np.zeros((2, 3))), stats_rows=[])


def page_data(html: str) -> Any:
    match = re.search(r'<script id="bk-data" type="application/json">(.*?)</script>', html, re.S)
    assert match
    return json.loads(match.group(1))


def test_open_trade_runs_to_the_last_bar_and_markers_snap_to_bars() -> None:
    c = make_candles(3 * DAY)
    trades = make_trades(c, 3)
    trades.append({**trades[0], "open_ts": int(c["timestamp"][-100]) + 17, "close_ts": None, "price_close": None,
                   "close_reason": None, "pnl_pct": None, "pnl_money": None})
    data = page_data(render_backtest_html(title="t", symbol="s", candles=c, trades=trades, equity=None, stats=[],
                                          max_bars=300))
    assert data["interval"] == "15m" and len(data["bars"]["t"]) <= 300
    bar_times = set(data["bars"]["t"])
    assert all(t["eb"] in bar_times and t["xb"] in bar_times for t in data["trades"])
    last = data["trades"][-1]
    assert last["open"] is True and last["ct"] is None and last["xb"] == data["bars"]["t"][-1]
    assert data["equity"] is None


def test_renders_without_candles_equity_or_trades() -> None:
    empty = {k: np.zeros(0) for k in ("timestamp", "open", "high", "low", "close", "volume")}
    html = render_backtest_html(title="t", symbol="s", candles=empty, trades=[], equity=None, stats=[])
    assert "no candles" in html


# ---------------------------------------------------------------- in the browser


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with browser() as b:
        yield b


def assert_clean(log: PageLog, page: Any) -> None:
    assert log.page_errors == [], log.page_errors
    assert log.console_errors == [], log.console_errors
    assert log.external_requests == [], log.external_requests
    bk = page.evaluate("window.__bk")
    assert bk and bk.get("ready") is True, bk


def column(page: Any, table: str, index: int) -> list[str]:
    out: list[str] = page.eval_on_selector_all(
        f"{table} tbody tr", f"rows => rows.map(r => r.cells[{index}].dataset.v)"
    )
    return out


def test_backtest_report_in_chromium(chromium: Browser, tmp_path: Path) -> None:
    c = make_candles(3 * DAY)
    trades = make_trades(c, 10)
    trades[3] = {**trades[3], "close_reason": HOSTILE_REASON}
    html = render_backtest_html(title=HOSTILE_TITLE, symbol="BTCUSDT", candles=c, trades=trades,
                                equity=make_equity(c, trades), stats=STATS)
    path = tmp_path / "report.html"
    path.write_text(html, encoding="utf-8")
    page, log = chromium.open(path)
    assert_clean(log, page)
    bk = page.evaluate("window.__bk")
    closed = sum(1 for t in trades if t["close_ts"] is not None)
    assert len(trades) == 10
    assert bk["trades"] == 10 and bk["markers"] == 2 * closed
    assert bk["bars"] == 3 * DAY and bk["interval"] == "1m"
    assert 0 < bk["equityPoints"] <= bk["bars"] and bk["labelled"] is True

    canvases = canvas_stats(page, "#chart")
    assert canvases["sized"] >= 6, canvases  # price, equity and drawdown panes plus their axes
    assert canvases["colors"] > 20, canvases  # drawn, not a blank fill

    assert page.title() == HOSTILE_TITLE
    assert page.inner_text("h1") == HOSTILE_TITLE
    assert page.locator(".pwn").count() == 0
    assert HOSTILE_REASON in page.inner_text("#trades tbody")

    pnl = 9  # the "PnL %" column
    header = page.locator("#trades thead th").nth(pnl)
    header.click()
    up = [float(v) for v in column(page, "#trades", pnl)]
    assert up == sorted(up) and header.get_attribute("aria-sort") == "ascending"
    header.click()
    down = [float(v) for v in column(page, "#trades", pnl)]
    assert down == sorted(up, reverse=True)
    page.locator("#trades thead th").nth(8).click()  # text column
    reasons = column(page, "#trades", 8)
    assert reasons == sorted(reasons)
    page.locator("#trades thead th").nth(0).click()
    assert [int(v) for v in column(page, "#trades", 0)] == list(range(1, 11))

    shot = save_screenshot(page, tmp_path / "report.png", "report.png")
    assert shot.stat().st_size > 20_000
    page.close()


def test_two_years_of_1m_candles_stay_responsive(chromium: Browser, tmp_path: Path) -> None:
    started = time.perf_counter()
    html, trades = backtest_page(2 * 365 * DAY, 300)
    rendered = time.perf_counter() - started
    path = tmp_path / "two_years.html"
    path.write_text(html, encoding="utf-8")
    assert len(html) < 2_000_000, len(html)
    page, log = chromium.open(path)
    assert_clean(log, page)
    bk = page.evaluate("window.__bk")
    assert bk["interval"] == "4h" and 0 < bk["bars"] <= 5000
    assert bk["markers"] == 2 * len(trades) and bk["equityPoints"] <= bk["bars"]
    assert bk["labelled"] is False  # ~600 markers in view: shapes only, no texts
    assert canvas_stats(page, "#chart")["colors"] > 20
    page.close()
    print(f"2y: {len(html):,} bytes, rendered in {rendered:.2f}s")


def test_comparison_report_in_chromium(chromium: Browser, tmp_path: Path) -> None:
    minutes = 30 * DAY
    ts = T0 + np.arange(minutes, dtype=np.int64) * M
    rng = np.random.default_rng(11)
    names = ["sma_fast", "sma_slow", "breakout", "mean_revert <b>"]
    curves = {n: (ts, 10_000 * np.exp(np.cumsum(rng.normal(0.000002 * (k - 1), 0.0004, minutes))))
              for k, n in enumerate(names)}
    metrics: dict[str, float | None] = {n: float(v[-1] / v[0] - 1) * 100 for n, (_, v) in curves.items()}
    metrics["broken"] = None
    fast, slow = [5, 10, 20, 50, 100], [50, 100, 200, 400]
    heat = np.array([[np.sin(f / 17 + s / 90) * 2 for f in fast] for s in slow])
    heat[0, 0] = np.nan
    rows = [{"strategy": n, "pnl_pct": metrics[n], "trades": 10 + k, "sharpe": None if k == 2 else 0.5 * k}
            for k, n in enumerate(names)]
    html = render_comparison_html(
        title="Walker: SMA family", curves=curves, metric_name="Total PnL %", metrics=metrics,
        heatmap=("fast", "slow", fast, slow, heat), stats_rows=rows,
    )
    path = tmp_path / "comparison.html"
    path.write_text(html, encoding="utf-8")
    page, log = chromium.open(path)
    assert_clean(log, page)
    bk = page.evaluate("window.__bk")
    assert bk["curves"] == 4 and 0 < bk["points"] <= 4 * 2000
    assert bk["metrics"] == 5 and bk["heatmapCells"] == 20
    canvases = canvas_stats(page, "#chart")
    assert canvases["sized"] >= 2 and canvases["colors"] > 20, canvases
    assert page.locator(".heat tbody td").count() == 20
    assert page.locator("#curve-legend button").count() == 4
    assert "mean_revert <b>" in page.inner_text("#curve-legend") and page.locator("#curve-legend b").count() == 0

    ranked = column(page, "#metrics", 2)
    assert [float(v) for v in ranked[:-1]] == sorted((float(v) for v in ranked[:-1]), reverse=True)
    assert ranked[-1] == ""  # no value ranks last
    header = page.locator("#stats-rows thead th").nth(3)  # sharpe, with a missing value
    header.click()
    sharpe = column(page, "#stats-rows", 3)
    assert sharpe[-1] == "" and [float(v) for v in sharpe[:-1]] == sorted(float(v) for v in sharpe[:-1])

    page.locator("#curve-legend button").first.click()
    assert "off" in (page.locator("#curve-legend button").first.get_attribute("class") or "")
    shot = save_screenshot(page, tmp_path / "comparison.png", "comparison.png")
    assert shot.stat().st_size > 20_000
    page.close()
