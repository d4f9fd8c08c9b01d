"""Issue 12: errors in the Python API cannot be missed — counted, logged once per kind, shown in
statistics and reports, raised with strict=True; a get_signal of the wrong shape is refused."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import backtest_kit as bk
from backtest_kit.demo import ArrayExchange
from conftest import long_signal
from helpers.market import T0, M, flat_market


def failing(kit, error=None, frame=(10, 160)):
    """A strategy whose get_signal raises on every call (151 calls on a 1m frame)."""
    def boom(symbol, when):
        raise error or ValueError(f"boom at {when:%H:%M}")
    kit.flat(0, 400).setup(frame=frame, signals={m: boom for m in range(frame[0], frame[1] + 1)})
    return kit


def test_a_get_signal_that_always_raises_is_counted_in_statistics_and_reports(kit):
    failing(kit)
    assert kit.run() == []
    stats = kit.stats()
    assert stats.total_signals == 0 and stats.error_count == 151 == len(kit.errors)
    assert stats.first_error.startswith("st: ValueError: boom at 00:10")
    report = asyncio.run(bk.Backtest.get_report(kit.SYMBOL, "st"))
    assert report.startswith("# Backtest Report: st\n\nNo signals closed yet.\n\n**Errors:** 151 during the run")
    assert "boom at 00:10" in report


def test_a_clean_run_reports_no_errors_and_its_report_is_unchanged(kit):
    kit.flat(0, 400).setup(frame=(10, 100), signals={10: long_signal()})
    kit.run()
    stats = kit.stats()
    assert (stats.error_count, stats.first_error) == (0, None)
    assert "Errors" not in asyncio.run(bk.Backtest.get_report(kit.SYMBOL, "st"))


def test_first_error_of_each_kind_is_a_warning_and_repeats_are_counted(kit, caplog):
    caplog.set_level(logging.DEBUG, logger="backtest_kit")
    failing(kit)
    kit.run()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3, warnings  # the 1st, the 10th and the 100th
    assert "[st] ValueError: boom at 00:10" in warnings[0] and "counted" in warnings[0]
    assert "10 times" in warnings[1] and "100 times" in warnings[2]
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 148
    caplog.clear()
    kit.errors.clear()
    asyncio.run(kit.arun())  # a new run counts afresh: its first error is a warning again
    assert sum(r.levelno == logging.WARNING for r in caplog.records) == 3


SCRIPT = textwrap.dedent("""
    import asyncio, logging, sys
    import backtest_kit as bk
    from backtest_kit.demo import ArrayExchange
    from helpers.market import T0, M, flat_market
    if sys.argv[1] == "configured":
        logging.basicConfig(stream=sys.stdout, format="APP %(name)s %(levelname)s %(message)s")

    def get_signal(symbol, when):
        raise ValueError("boom")

    bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(flat_market(400)).get_candles)
    bk.add_frame(frame_name="fr", interval="1m", start_date=T0 + 10 * M, end_date=T0 + 160 * M)
    bk.add_strategy(strategy_name="st", interval="1m", get_signal=get_signal,
                    callbacks={"on_idle": lambda *a: 1 / 0})

    async def main():
        async for _ in bk.Backtest.run("BTCUSDT", strategy_name="st", exchange_name="ex", frame_name="fr"):
            pass
        print("errors", (await bk.Backtest.get_data("BTCUSDT", "st")).error_count)

    asyncio.run(main())
""")


@pytest.mark.parametrize("mode", ["plain", "configured"])
def test_errors_reach_stderr_with_no_logging_configured(mode):
    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(bk.__file__).parent.parent), str(tests)])}
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, env=env,
                         timeout=120, check=True)
    assert "errors 302" in out.stdout  # 151 get_signal errors + 151 on_idle errors
    if mode == "plain":  # logging.lastResort: WARNING and above to stderr, no NullHandler in the way
        lines = out.stderr.splitlines()
        assert sum("ValueError: boom" in line for line in lines) == 1
        assert sum("ZeroDivisionError" in line for line in lines) == 3  # the 1st, 10th, 100th of that kind
        assert any("[st] ValueError has happened 100 times" in line for line in lines)
        assert len(lines) == 6, lines
    else:  # the application configured logging: its handler alone decides
        assert out.stderr == ""
        assert out.stdout.count("APP backtest_kit WARNING") == 6


# --- strict=True raises the first error instead of reporting it -----------------------------------

def test_strict_backtest_raises_the_first_error_of_get_signal(kit):
    failing(kit)

    async def main():
        return [r async for r in bk.Backtest.run(kit.SYMBOL, strategy_name="st", exchange_name="ex",
                                                 frame_name="fr", strict=True)]

    with pytest.raises(ValueError, match="boom at 00:10"):
        asyncio.run(main())
    stats = kit.stats()
    assert stats.error_count == 1 and kit.errors == []  # raised, not sent to listen_error


@pytest.mark.parametrize("case", ["invalid signal", "callback", "exchange"])
def test_strict_raises_invalid_signals_callback_errors_and_exchange_failures(kit, no_retry_delay, case):
    if case == "exchange":
        async def get_candles(symbol, interval, since, limit):
            raise ConnectionError("exchange down")
        kit.setup(frame=(10, 20), get_candles=get_candles)
        expected = bk.CandleError
    elif case == "callback":
        kit.flat(0, 400).setup(frame=(10, 100), signals={10: long_signal()},
                               callbacks={"on_open": lambda *a: 1 / 0})
        expected = ZeroDivisionError
    else:
        kit.flat(0, 400).setup(frame=(10, 100), signals={10: long_signal(tp=90.0)})
        expected = bk.ValidationError
    if case == "exchange":  # issue 11: a fetch that fails after its retries fails the run, strict or not
        with pytest.raises(expected):
            kit.run()
    else:
        assert kit.run() is not None and kit.stats().error_count >= 1  # reported, the run went on

    async def main():
        return [r async for r in bk.Backtest.run(kit.SYMBOL, strategy_name="st", exchange_name="ex",
                                                 frame_name="fr", strict=True)]

    with pytest.raises(expected):
        asyncio.run(main())


def test_strict_live_raises_and_live_statistics_count_errors(in_tmp_dir):
    def get_signal(symbol, when):
        raise RuntimeError("no signal today")

    bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(flat_market(200)).get_candles)
    bk.add_strategy(strategy_name="s", interval="1m", get_signal=get_signal)

    async def run(strict):
        clock = bk.VirtualClock(T0 + 10 * M + 1, T0 + 30 * M)
        return [r async for r in bk.Live.run("BTC", strategy_name="s", exchange_name="ex", clock=clock,
                                             strict=strict)]

    assert asyncio.run(run(False)) == []
    stats = asyncio.run(bk.Live.get_data("BTC", "s"))
    assert stats.error_count == 20 and "no signal today" in stats.first_error
    assert "**Errors:** 20" in asyncio.run(bk.Live.get_report("BTC", "s"))
    with pytest.raises(RuntimeError, match="no signal today"):
        asyncio.run(run(True))


# --- add_strategy refuses a get_signal that cannot be called as (symbol, when) ---------------------

@pytest.mark.parametrize("fn", [lambda s: None, lambda: None, lambda s, w, extra: None,
                                lambda s, w, *, key: None])
def test_add_strategy_refuses_a_get_signal_of_the_wrong_shape(fn):
    with pytest.raises(bk.ValidationError, match=r"get_signal.*get_signal\(symbol, when\)"):
        bk.add_strategy(strategy_name="bad", interval="1m", get_signal=fn)
    assert bk.list_strategies() == []


class Callable2:
    def __call__(self, symbol, when):
        return None


@pytest.mark.parametrize("fn", [lambda s, w: None, lambda *a: None, lambda s, w, extra=1: None,
                                lambda symbol, when, **kw: None, Callable2(), print])
def test_add_strategy_accepts_every_get_signal_callable_as_symbol_when(fn):
    bk.add_strategy(strategy_name="ok", interval="1m", get_signal=fn)
    assert [s.strategy_name for s in bk.list_strategies()] == ["ok"]
