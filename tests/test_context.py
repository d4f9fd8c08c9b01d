"""Context helpers: usable only inside strategy/exchange code run by an execution class."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

import backtest_kit as bk
from backtest_kit._time import to_ms
from conftest import SYMBOL, Kit, ms

pytestmark = pytest.mark.usefixtures("no_retry_delay")

ASYNC_HELPERS = [
    ("get_candles", lambda: bk.get_candles(SYMBOL, "1m", 3)),
    ("get_average_price", lambda: bk.get_average_price(SYMBOL)),
    ("format_price", lambda: bk.format_price(SYMBOL, 1.5)),
    ("format_quantity", lambda: bk.format_quantity(SYMBOL, 0.25)),
]


# --- outside a run ----------------------------------------------------------------------------

@pytest.mark.parametrize("name, call", ASYNC_HELPERS, ids=[n for n, _ in ASYNC_HELPERS])
def test_async_helper_outside_run_raises_context_error(name, call):
    with pytest.raises(bk.ContextError) as info:
        asyncio.run(call())
    msg = str(info.value)
    assert name in msg
    assert "no execution context" in msg and "inside" in msg


@pytest.mark.parametrize("name", ["get_date", "get_mode"])
def test_sync_helper_outside_run_raises_context_error(name):
    with pytest.raises(bk.ContextError) as info:
        getattr(bk, name)()
    assert name in str(info.value) and "no execution context" in str(info.value)


def test_context_error_is_a_library_error():
    assert issubclass(bk.ContextError, bk.BacktestKitError)


def test_helpers_outside_run_even_with_schemas_registered(kit):
    kit.flat(-10, 10).setup(frame=(0, 0))
    with pytest.raises(bk.ContextError):
        bk.get_date()


# --- inside a run -----------------------------------------------------------------------------

def probe_all(kit, frame=(0, 4), **setup):
    seen = []

    async def probe(symbol, when):
        seen.append({
            "when": when, "date": bk.get_date(), "mode": bk.get_mode(),
            "price": await bk.format_price(symbol, 1234.5678),
            "qty": await bk.format_quantity(symbol, 0.125),
        })

    kit.flat(-10, frame[1] + 10)
    kit.setup(frame=frame, signals={m: probe for m in range(frame[0], frame[1] + 1)}, **setup)
    kit.run()
    assert kit.errors == []
    return seen


def test_get_date_is_when_and_utc(kit):
    seen = probe_all(kit)
    assert [to_ms(s["date"]) for s in seen] == [ms(m) for m in range(5)]
    for s in seen:
        assert s["date"] == s["when"]
        assert s["date"].tzinfo is not None
        assert s["date"].utcoffset() == timedelta(0)
        assert s["when"].tzinfo is not None and s["when"].utcoffset() == timedelta(0)


def test_get_mode_is_backtest(kit):
    assert {s["mode"] for s in probe_all(kit)} == {"backtest"}


def test_default_formatters_are_plain_str(kit):
    s = probe_all(kit)[0]
    assert s["price"] == "1234.5678" and s["qty"] == "0.125"


def test_custom_sync_formatters_are_used(kit):
    s = probe_all(kit, format_price=lambda symbol, p: f"{symbol}:{p:.2f}",
                  format_quantity=lambda symbol, q: f"{q:.4f}")[0]
    assert s["price"] == f"{SYMBOL}:1234.57" and s["qty"] == "0.1250"


def test_custom_async_formatters_are_used(kit):
    async def fp(symbol, p):
        return f"${p:,.1f}"

    async def fq(symbol, q):
        return f"{q * 1000:.0f}m"

    s = probe_all(kit, format_price=fp, format_quantity=fq)[0]
    assert s["price"] == "$1,234.6" and s["qty"] == "125m"


def test_context_is_gone_after_the_run(kit):
    probe_all(kit)
    with pytest.raises(bk.ContextError):
        bk.get_date()
    with pytest.raises(bk.ContextError):
        asyncio.run(bk.get_average_price(SYMBOL))


def test_context_follows_each_frame_of_unaligned_15m_frames(kit):
    seen = probe_all(kit, frame=(7, 52), frame_interval="15m")
    assert [to_ms(s["date"]) for s in seen] == [ms(7), ms(22), ms(37), ms(52)]


def test_concurrent_runs_keep_their_own_context():
    """Two backtests interleaved on one loop: each strategy sees its own symbol and time."""
    bad = []

    def strategy(symbol_expected):
        async def get_signal(symbol, when):
            await asyncio.sleep(0)  # let the other run interleave
            if symbol != symbol_expected or bk.get_date() != when:
                bad.append((symbol_expected, symbol, when, bk.get_date()))
            await bk.get_candles(symbol, "1m", 2)
            await asyncio.sleep(0)
            if bk.get_date() != when:
                bad.append((symbol_expected, when, bk.get_date()))
            return None
        return get_signal

    kit = Kit().flat(-10, 40)
    kit.setup(frame=(0, 20), strategy_name="a")
    bk.add_strategy(strategy_name="sa", interval="1m", get_signal=strategy("AAA"))
    bk.add_frame(frame_name="fb", interval="1m", start_date=ms(3), end_date=ms(30))
    bk.add_strategy(strategy_name="sb", interval="1m", get_signal=strategy("BBB"))

    async def drain(symbol, strategy_name, frame_name):
        return [r async for r in bk.Backtest.run(symbol, strategy_name=strategy_name,
                                                 exchange_name="ex", frame_name=frame_name)]

    async def main():
        return await asyncio.gather(drain("AAA", "sa", "fr"), drain("BBB", "sb", "fb"))

    assert asyncio.run(main()) == [[], []]
    assert bad == []
    assert kit.errors == []


def test_daily_candles_for_trend_filters(kit):
    """get_candles(symbol, "1d", n): the n last closed days (the exchange serves or aggregates them)."""
    seen = []

    async def probe(symbol, when):
        days = await bk.get_candles(symbol, "1d", 2)
        seen.append([int(t) for t in days.timestamp])
        return None

    kit.flat(-3 * 1440, 10)
    kit.setup(frame=(0, 0), signals={0: probe})
    kit.run()
    assert seen == [[kit.T0 - 2 * 1440 * kit.M, kit.T0 - 1440 * kit.M]]
