"""Issue 12: property tests over the public API — candles, signals, configs, frames, get_candles
limits, report numbers and saved live state. Every case ends in a correct result or a library
error (bk.BacktestKitError), never a bare Python exception. Derandomized, bounded examples."""

from __future__ import annotations

import asyncio
import json
import math
import os
import tempfile
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backtest_kit as bk
from backtest_kit._report.table import fmt_num, fmt_pct, fmt_price
from backtest_kit._schema import MAX_FRAMES
from backtest_kit.demo import ArrayExchange
from helpers.market import T0, M, flat_market

# BK_HYPOTHESIS_EXAMPLES=500 BK_HYPOTHESIS_RANDOM=1 explores further than the suite's bounded run.
EXAMPLES = int(os.environ.get("BK_HYPOTHESIS_EXAMPLES", "40"))
SETTINGS = settings(derandomize=not os.environ.get("BK_HYPOTHESIS_RANDOM"), max_examples=EXAMPLES, deadline=None,
                    database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SYMBOL = "BTCUSDT"

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**30), 10**30),
    st.sampled_from([0, 1, -1, 100, 101.0, 99.0, 1e300, -1e300, 5e-324, 2**63, 10**400]),
    st.fractions(max_denominator=7), st.booleans(), st.none(), st.text(max_size=3))


def fresh() -> None:
    bk.reset()
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)


def register(candles: np.ndarray, get_signal, frame=(10, 130)) -> None:
    bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(candles).get_candles)
    bk.add_frame(frame_name="fr", interval="1m", start_date=T0 + frame[0] * M, end_date=T0 + frame[1] * M)
    bk.add_strategy(strategy_name="st", interval="1m", get_signal=get_signal)


def backtest(strict: bool) -> list:
    async def main() -> list:
        return [r async for r in bk.Backtest.run(SYMBOL, strategy_name="st", exchange_name="ex", frame_name="fr",
                                                 strict=strict)]
    return asyncio.run(main())


def ends_well(strict: bool = True) -> list | bk.BacktestKitError:
    """The run's results, or the library error it ended with (anything else fails the test)."""
    try:
        return backtest(strict)
    except bk.BacktestKitError as e:
        assert str(e)  # says what and where
        return e


def check_trades(results: list) -> None:
    """Closed trades obey the signal rules whatever get_signal returned."""
    for r in results:
        s = r.signal
        assert s.position in ("long", "short")
        for p in (s.price_open, s.price_take_profit, s.price_stop_loss):
            assert isinstance(p, (int, float)) and math.isfinite(p) and p > 0
        long = s.position == "long"
        assert (s.price_take_profit > s.price_open > s.price_stop_loss) if long else (
            s.price_take_profit < s.price_open < s.price_stop_loss)
        assert isinstance(s.minute_estimated_time, int) and s.minute_estimated_time > 0
        if r.action == "closed":
            assert math.isfinite(r.pnl.pnl_percentage)


# --- signals ----------------------------------------------------------------------------------

signal_dicts = st.fixed_dictionaries(
    {"position": st.sampled_from(["long", "short", "sideways", "", 1, None])},
    optional={
        "price_take_profit": numbers, "price_stop_loss": numbers, "minute_estimated_time": numbers,
        "price_open": numbers, "order_type": st.sampled_from(["limit", "stop", "market", 3, None]),
        "note": st.one_of(st.text(max_size=20), st.integers()), "id": st.one_of(st.text(max_size=5), st.integers()),
        "surprise": st.integers(),
    })
sane = st.fixed_dictionaries({
    "position": st.sampled_from(["long", "short"]),
    "price_take_profit": st.floats(90, 110), "price_stop_loss": st.floats(90, 110),
    "minute_estimated_time": st.integers(1, 90)},
    optional={"price_open": st.floats(95, 105), "order_type": st.sampled_from(["limit", "stop"])})
returned = st.one_of(signal_dicts, sane, st.none(), st.integers(), st.text(max_size=3), st.lists(st.integers()))


@SETTINGS
@given(answers=st.lists(returned, min_size=1, max_size=6), seed=st.integers(0, 3))
def test_any_get_signal_answer_ends_in_trades_or_a_library_error(answers, seed):
    fresh()
    candles = flat_market(400, prices={m: 100 + (m * (seed + 1)) % 7 - 3 for m in range(400)})

    def get_signal(symbol, when):
        minute = (int(when.timestamp() * 1000) - T0) // M
        value = answers[minute % len(answers)]
        return dict(value) if isinstance(value, dict) else value

    register(candles, get_signal)
    strict = ends_well(strict=True)
    lenient = backtest(strict=False)  # never raises: errors are counted instead
    check_trades(lenient)
    stats = asyncio.run(bk.Backtest.get_data(SYMBOL, "st"))
    if isinstance(strict, bk.BacktestKitError):
        assert stats.error_count >= 1 and stats.first_error
    asyncio.run(bk.Backtest.get_report(SYMBOL, "st"))


# --- candles ----------------------------------------------------------------------------------

@SETTINGS
@given(edits=st.lists(st.tuples(st.integers(0, 299), st.integers(0, 5), numbers), max_size=8),
       drop=st.lists(st.integers(0, 299), max_size=20), shuffle=st.booleans())
def test_any_candles_end_in_trades_or_a_library_error(edits, drop, shuffle):
    fresh()
    rows = flat_market(300, prices={m: 100 + (m % 9) - 4 for m in range(300)}).astype(object)
    for i, col, value in edits:
        rows[i, col] = value
    keep = [i for i in range(300) if i not in set(drop)]
    rows = rows[keep]
    if shuffle:
        rows = rows[::-1]

    async def get_candles(symbol, interval, since, limit):
        start = int(since.timestamp() * 1000)
        out = []
        for r in rows:
            try:
                if float(r[0]) >= start:
                    out.append(tuple(r))
            except (TypeError, ValueError, OverflowError):
                out.append(tuple(r))
        return out[:limit]

    bk.add_exchange(exchange_name="ex", get_candles=get_candles)
    bk.add_frame(frame_name="fr", interval="1m", start_date=T0 + 10 * M, end_date=T0 + 100 * M)
    bk.add_strategy(strategy_name="st", interval="1m", get_signal=lambda s, w: {
        "position": "long", "price_take_profit": 103.0, "price_stop_loss": 97.0, "minute_estimated_time": 30})
    result = ends_well(strict=True)
    if not isinstance(result, bk.BacktestKitError):
        check_trades(result)


# --- configs ----------------------------------------------------------------------------------

config_keys = st.sampled_from(sorted(set(bk.get_default_config()) - {"CC_GET_CANDLES_RETRY_DELAY_MS"}))


@SETTINGS
@given(overrides=st.dictionaries(config_keys, st.one_of(numbers, st.sampled_from(
    ["take_profit", "stop_loss", "open_distance", True, False])), max_size=4))
def test_any_config_is_applied_or_refused_whole(overrides):
    fresh()
    before = bk.get_config()
    try:
        bk.set_config(**overrides)
    except bk.ConfigError as e:
        assert bk.get_config() == before
        assert any(key in str(e) for key in overrides)
        return
    after = bk.get_config()
    for key, value in overrides.items():
        assert after[key] == value or (isinstance(value, Fraction) and after[key] == float(value))
    register(flat_market(400, prices={m: 100 + (m % 5) - 2 for m in range(400)}), lambda s, w: {
        "position": "short", "price_take_profit": 97.0, "price_stop_loss": 103.0, "minute_estimated_time": 20})
    result = ends_well(strict=True)
    if not isinstance(result, bk.BacktestKitError):
        check_trades(result)


# --- frames -----------------------------------------------------------------------------------

dates = st.one_of(
    st.integers(-(10**16), 10**16), st.sampled_from([0, 2**63, -1, 253_402_300_799_999, 253_402_300_800_000]),
    st.datetimes(timezones=st.sampled_from([None, UTC])), st.dates(), numbers)


@SETTINGS
@given(interval=st.sampled_from(["1m", "3m", "1h", "12h", "3d", "2d", "", 1]), start=dates, end=dates)
def test_any_frame_is_registered_with_a_sane_range_or_refused(interval, start, end):
    fresh()
    try:
        bk.add_frame(frame_name="f", interval=interval, start_date=start, end_date=end)
    except bk.ValidationError as e:
        assert "add_frame(frame_name='f')" in str(e)
        assert bk.list_frames() == []
        return
    frame = bk.list_frames()[0]
    assert datetime(1970, 1, 1, tzinfo=UTC) <= frame.start_date <= frame.end_date
    assert frame.end_ms <= 253_402_300_799_999
    step = {"1m": 1, "3m": 3, "1h": 60, "12h": 720, "3d": 4320}[interval] * M
    assert (frame.end_ms - frame.start_ms) // step + 1 <= MAX_FRAMES


# --- get_candles limits -------------------------------------------------------------------------

@SETTINGS
@given(limit=numbers, interval=st.sampled_from(["1m", "8h", "1d", "5m"]))
def test_any_get_candles_limit_gives_candles_or_a_library_error(limit, interval):
    fresh()
    seen = []

    async def get_signal(symbol, when):
        try:
            candles = await bk.get_candles(symbol, interval, limit)
            seen.append(len(candles))
        except bk.BacktestKitError as e:
            seen.append(e)
        return None

    register(flat_market(600), get_signal, frame=(500, 500))
    assert backtest(strict=True) == []
    assert len(seen) == 1
    if isinstance(seen[0], int):
        assert seen[0] <= limit


# --- report numbers -----------------------------------------------------------------------------

@SETTINGS
@given(x=st.one_of(st.floats(), st.integers(-(10**30), 10**30)), digits=st.integers(0, 10))
def test_report_numbers_always_format(x, digits):
    for text in (fmt_price(x), fmt_pct(x), fmt_num(x, digits)):
        assert isinstance(text, str) and text


# --- saved live state ---------------------------------------------------------------------------

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(), st.text(max_size=5)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)

_VALID: dict | None = None


def live(start: int, end: int) -> list:
    async def main() -> list:
        clock = bk.VirtualClock(T0 + start * M + 1, T0 + end * M)
        return [r async for r in bk.Live.run("BTC", strategy_name="st", exchange_name="ex", clock=clock)]
    return asyncio.run(main())


def live_setup() -> None:
    fresh()

    def get_signal(symbol, when):
        minute = (int(when.timestamp() * 1000) - T0) // M
        return {"position": "long", "price_take_profit": 101.0, "price_stop_loss": 99.0,
                "minute_estimated_time": 60} if minute % 40 == 0 else None

    bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(flat_market(300)).get_candles)
    bk.add_strategy(strategy_name="st", interval="1m", get_signal=get_signal)


def valid_document(folder: Path) -> dict:
    """A document the engine wrote: an open long and a closed trade."""
    global _VALID
    if _VALID is None:
        live_setup()
        bk.use_persist_adapter(bk.FileBackend(folder))
        live(10, 125)
        _VALID = json.loads((folder / "live" / "BTC_st.json").read_text())
    return json.loads(json.dumps(_VALID))


def paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from paths(v, (*prefix, i))


@settings(SETTINGS, max_examples=EXAMPLES * 3 // 2)
@given(data=st.data())
def test_any_saved_live_state_restores_or_is_a_persist_error(data):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        doc = valid_document(folder / "reference")
        if data.draw(st.booleans()):
            where = data.draw(st.sampled_from(list(paths(doc))))
            value = data.draw(json_values)
            if where:
                target = doc
                for part in where[:-1]:
                    target = target[part]
                target[where[-1]] = value
            else:
                doc = value
        live_setup()
        bk.use_persist_adapter(bk.FileBackend(folder / "state"))
        state = folder / "state" / "live" / "BTC_st.json"
        state.parent.mkdir(parents=True)
        text = json.dumps(doc)
        state.write_text(text)
        try:
            results = live(130, 150)
        except bk.PersistError as e:
            assert str(state) in str(e) or "corrupt" in str(e) or "belongs to" in str(e)
            assert state.read_text() == text  # never discarded
            return
        assert isinstance(doc, dict)  # only an object can be restored
        check_trades([r for r in results if r.action != "opened"])
        stats = asyncio.run(bk.Live.get_data("BTC", "st"))
        check_trades(stats.signal_list)


@SETTINGS
@given(doc=json_values)
def test_any_saved_risk_positions_load_or_are_a_persist_error(doc):
    with tempfile.TemporaryDirectory() as tmp:
        live_setup()
        bk.add_risk(risk_name="r", validations=[])
        bk.add_strategy(strategy_name="rs", interval="1m", get_signal=lambda s, w: None, risk_name="r")
        bk.use_persist_adapter(bk.FileBackend(tmp))
        risk = Path(tmp) / "risk" / "r.json"
        risk.parent.mkdir(parents=True)
        risk.write_text(json.dumps(doc))

        async def main() -> list:
            clock = bk.VirtualClock(T0 + 10 * M + 1, T0 + 15 * M)
            return [r async for r in bk.Live.run("BTC", strategy_name="rs", exchange_name="ex", clock=clock)]

        try:
            assert asyncio.run(main()) == []
        except bk.PersistError as e:
            assert "r.json" in str(e)
            return
        assert isinstance(doc, list)


@SETTINGS
@given(answers=st.lists(returned, min_size=1, max_size=4))
def test_any_get_signal_answer_in_live_ends_in_trades_or_a_library_error(answers):
    with tempfile.TemporaryDirectory() as tmp:
        fresh()
        bk.use_persist_adapter(bk.FileBackend(tmp))

        def get_signal(symbol, when):
            value = answers[((int(when.timestamp() * 1000) - T0) // M) % len(answers)]
            return dict(value) if isinstance(value, dict) else value

        bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(
            flat_market(300, prices={m: 100 + (m % 7) - 3 for m in range(300)})).get_candles)
        bk.add_strategy(strategy_name="st", interval="1m", get_signal=get_signal)

        async def main(strict: bool) -> list:
            clock = bk.VirtualClock(T0 + 10 * M + 1, T0 + 100 * M)
            return [r async for r in bk.Live.run("BTC", strategy_name="st", exchange_name="ex", clock=clock,
                                                 strict=strict)]

        try:
            check_trades([r for r in asyncio.run(main(True)) if r.action != "opened"])
        except bk.BacktestKitError as e:
            assert str(e)
        bk.reset()  # a new process: the saved state of the strict run is restored and validated
        fresh()
        bk.use_persist_adapter(bk.FileBackend(tmp))
        bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(
            flat_market(300, prices={m: 100 + (m % 7) - 3 for m in range(300)})).get_candles)
        bk.add_strategy(strategy_name="st", interval="1m", get_signal=get_signal)
        check_trades([r for r in asyncio.run(main(False)) if r.action != "opened"])
