"""dump(format="html") of real runs, opened in headless Chromium: Backtest, Walker and Portfolio pages."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import backtest_kit as bk
from backtest_kit.demo import ArrayExchange, rule_strategy, synthetic_candles
from helpers.browser import browser, canvas_stats, save_screenshot

T0 = 1_704_067_200_000
M = 60_000


def _register(days: int = 6) -> None:
    sources = {s: ArrayExchange(synthetic_candles(days * 1440, start_ms=T0, seed=21 + i))
               for i, s in enumerate(("BTCUSDT", "ETHUSDT"))}

    async def get_candles(symbol, interval, since, limit):
        return await sources[symbol].get_candles(symbol, interval, since, limit)

    bk.add_exchange(exchange_name="ex", get_candles=get_candles)
    bk.add_frame(frame_name="fr", interval="1m", start_date=datetime.fromtimestamp((T0 + 1440 * M) / 1000, UTC),
                 end_date=datetime.fromtimestamp((T0 + (days - 1) * 1440 * M) / 1000, UTC))
    bk.add_sizing(sizing_name="small", method="fixed-percentage", risk_percentage=0.2)
    bk.add_strategy(strategy_name="fast", interval="5m", get_signal=rule_strategy(5, 30, 0.8, 0.6, 240),
                    sizing_name="small")
    bk.add_strategy(strategy_name="slow", interval="15m", get_signal=rule_strategy(10, 60, 1.2, 0.8, 480),
                    sizing_name="small")


async def _consume(gen):
    return [r async for r in gen]


def test_backtest_html_dump_in_a_real_browser(tmp_path: Path) -> None:
    _register()
    results = asyncio.run(_consume(bk.Backtest.run("BTCUSDT", strategy_name="fast", exchange_name="ex",
                                                   frame_name="fr")))
    closed = [r for r in results if r.action == "closed"]
    assert len(closed) >= 5
    path = Path(asyncio.run(bk.Backtest.dump("BTCUSDT", "fast", path=str(tmp_path), format="html")))
    assert path.name == "fast.html"
    text = path.read_text()
    assert "<script src=" not in text and "http://" not in text.split("<script>")[0]
    with browser() as b:
        page, log = b.open(path)
        assert log.page_errors == [] and log.console_errors == [] and log.external_requests == []
        state = page.evaluate("window.__bk")
        assert state["ready"] is True
        assert state["trades"] == len(closed) and state["markers"] == 2 * len(closed)
        assert canvas_stats(page, "#chart")["colors"] > 20  # the canvases are drawn
        assert "Return (compounded)" in page.inner_text("body")
        shot = save_screenshot(page, tmp_path / "backtest.png", "report.png")
        assert shot.stat().st_size > 20_000
        page.close()


def test_walker_and_portfolio_html_dumps_in_a_real_browser(tmp_path: Path) -> None:
    _register()
    bk.add_walker(walker_name="w", exchange_name="ex", frame_name="fr", strategies=["fast", "slow"],
                  metric="total_return_pct")
    asyncio.run(_consume(bk.Walker.run("BTCUSDT", walker_name="w")))
    walker = Path(asyncio.run(bk.Walker.dump("BTCUSDT", "w", path=str(tmp_path), format="html")))
    asyncio.run(_consume(bk.Portfolio.run(["BTCUSDT", "ETHUSDT"], strategies=["fast", "slow"], exchange_name="ex",
                                          frame_name="fr")))
    portfolio = Path(asyncio.run(bk.Portfolio.dump("fr", path=str(tmp_path), format="html")))
    with browser() as b:
        for path, curves in ((walker, 2), (portfolio, 5)):  # the account + 4 symbol/strategy pairs
            page, log = b.open(path)
            assert log.page_errors == [] and log.console_errors == [] and log.external_requests == []
            state = page.evaluate("window.__bk")
            assert state["ready"] is True and state["curves"] == curves, state
            page.close()


def test_bad_format_is_a_validation_error() -> None:
    _register()
    asyncio.run(_consume(bk.Backtest.run("BTCUSDT", strategy_name="fast", exchange_name="ex", frame_name="fr")))
    try:
        asyncio.run(bk.Backtest.dump("BTCUSDT", "fast", format="pdf"))
    except bk.ValidationError as e:
        assert "format must be 'md' or 'html'" in str(e)
    else:
        raise AssertionError("format='pdf' was accepted")


def test_sweep_and_walk_forward_html_dumps_in_a_real_browser(tmp_path: Path) -> None:
    _register(days=8)

    def make(fast, slow):
        return rule_strategy(fast, slow, 0.8, 0.6, 240, anchor="price")

    bk.add_sweep("sw", make, {"fast": [5, 8, 12], "slow": [30, 60]}, exchange_name="ex", frame_name="fr",
                 interval="5m", metric="total_return_pct")
    bk.add_walk_forward("wf", "sw", train="3d", test="1d")
    asyncio.run(_consume(bk.Sweep.run("BTCUSDT", sweep_name="sw")))
    asyncio.run(_consume(bk.WalkForward.run("BTCUSDT", walk_name="wf")))
    sweep = Path(asyncio.run(bk.Sweep.dump("BTCUSDT", "sw", path=str(tmp_path), format="html")))
    walk = Path(asyncio.run(bk.WalkForward.dump("BTCUSDT", "wf", path=str(tmp_path), format="html")))
    data = asyncio.run(bk.Sweep.get_data("BTCUSDT", "sw"))
    with browser() as b:
        page, log = b.open(sweep)
        assert log.page_errors == [] and log.console_errors == [] and log.external_requests == []
        state = page.evaluate("window.__bk")
        assert state["ready"] is True and state["curves"] == 6 and state["heatmapCells"] == 6, state
        lines = [line.split("\t") for line in page.inner_text("table.heat").splitlines()]
        cells = {(int(row[0]), int(fast)): float(v) for row in lines[1:] for fast, v in zip(lines[0][1:], row[1:])}
        assert cells == {(t.params["slow"], t.params["fast"]): round(t.metric_value, 4) for t in data.trials}
        assert canvas_stats(page, "#chart")["colors"] > 10
        save_screenshot(page, tmp_path / "sweep.png")
        page.close()
        page, log = b.open(walk)
        assert log.page_errors == [] and log.console_errors == []
        assert page.evaluate("window.__bk")["curves"] == 1  # the stitched out-of-sample equity
        assert "window 3" in page.inner_text("body") and "window 4" not in page.inner_text("body")
        page.close()
