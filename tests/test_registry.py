"""add_* / list_* / get_*: validation, atomic registration (D7), lookups with helpful errors."""

from datetime import UTC, date, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

import backtest_kit as bk
from backtest_kit._registry import (
    add_exchange,
    add_frame,
    add_risk,
    add_sizing,
    add_strategy,
    add_walker,
    get_exchange,
    get_frame,
    get_risk,
    get_sizing,
    get_strategy,
    get_walker,
    list_exchanges,
    list_frames,
    list_risks,
    list_sizings,
    list_strategies,
    list_walkers,
    validate_strategy_refs,
    validate_walker_refs,
)
from backtest_kit._schema import RiskValidation, StrategySchema, callback, default_format
from backtest_kit.errors import BacktestKitError, ValidationError

UTC = UTC
START, END = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)


async def get_candles(symbol, interval, since, limit):
    return []


async def get_signal(symbol, when):
    return None


def check(args):
    return None


def fails(fn, *args, **kwargs) -> str:
    """The message of the ValidationError fn raises."""
    with pytest.raises(ValidationError) as info:
        fn(*args, **kwargs)
    assert isinstance(info.value, BacktestKitError)
    return str(info.value)


# ---------------------------------------------------------------- happy paths

def test_add_exchange_and_list():
    fmt = lambda symbol, value: f"{value:.2f}"  # noqa: E731
    add_exchange(exchange_name="ex", get_candles=get_candles, format_price=fmt, note="demo")
    add_exchange("ex2", get_candles, callbacks={"on_candle_data": print})
    first, second = list_exchanges()
    assert (first.exchange_name, first.get_candles, first.format_price, first.note) == ("ex", get_candles, fmt, "demo")
    assert first.format_quantity is default_format and first.format_quantity("BTC", 1.5) == "1.5"
    assert second.exchange_name == "ex2" and get_exchange("ex2", "test") is second


def test_add_frame_and_list():
    add_frame(frame_name="f", interval="1h", start_date=START, end_date=END, note="one day")
    (frame,) = list_frames()
    assert frame.start_date == START and frame.end_date == END
    assert frame.start_ms == 1704067200000 and frame.end_ms == 1704153600000
    assert frame.interval == "1h" and frame.note == "one day" and get_frame("f") is frame


def test_add_strategy_and_list():
    add_risk("r1", [])
    add_risk("r2", [])
    add_strategy(strategy_name="s", interval="5m", get_signal=get_signal, risk_name="r1", risk_list=["r2", "r1"])
    add_strategy("t", "1m", get_signal)
    s, t = list_strategies()
    assert isinstance(s, StrategySchema) and s.get_signal is get_signal and s.interval == "5m"
    assert s.risk_list == ("r2", "r1") and s.risk_names == ("r1", "r2")
    assert t.risk_name is None and t.risk_list == () and t.risk_names == ()
    assert validate_strategy_refs("s", "Backtest.run") is s


def test_add_risk_normalises_validations():
    class Limit:
        note = "object note"

        def validate(self, args):
            return None

    limit = Limit()
    add_risk(risk_name="r", validations=[check, {"validate": check, "note": "max 3"}, limit,
                                         RiskValidation(check, "given")], callbacks={"on_rejected": print})
    (risk,) = list_risks()
    assert risk.validations == (RiskValidation(check), RiskValidation(check, "max 3"),
                                RiskValidation(limit.validate, "object note"), RiskValidation(check, "given"))
    assert isinstance(risk.validations, tuple) and get_risk("r") is risk


def test_add_sizing_methods_and_defaults():
    add_sizing("fixed", method="fixed-percentage", risk_percentage=2, max_position_percentage=10, note="n")
    add_sizing("kelly", "kelly-criterion", callbacks={"on_calculate": print})
    add_sizing("atr", "atr-based", risk_percentage=1.5, min_position_size=0, max_position_size=5)
    fixed, kelly, atr = list_sizings()
    assert fixed.method == "fixed-percentage" and fixed.note == "n" and fixed.params == {
        "risk_percentage": 2, "max_position_percentage": 10, "min_position_size": None, "max_position_size": None}
    assert kelly.params["kelly_multiplier"] == 0.25 and kelly.callbacks == {"on_calculate": print}
    assert "callbacks" not in kelly.params
    assert atr.params["atr_multiplier"] == 2 and atr.params["risk_percentage"] == 1.5
    assert (atr.params["min_position_size"], atr.params["max_position_size"]) == (0, 5)
    assert get_sizing("atr") is atr


def test_add_walker_and_list():
    add_walker(walker_name="w", exchange_name="ex", frame_name="f", strategies=["a", "b"])
    add_walker("w2", "ex", "f", ("a",), metric="total_pnl", note="x")
    w, w2 = list_walkers()
    assert w.strategies == ("a", "b") and w.metric == "sharpe_ratio"
    assert w2.metric == "total_pnl" and get_walker("w2") is w2


def test_list_returns_copies_in_registration_order():
    for name in ("c", "a", "b"):
        add_strategy(name, "1m", get_signal)
    listed = list_strategies()
    assert [s.strategy_name for s in listed] == ["c", "a", "b"]
    listed.clear()
    assert len(list_strategies()) == 3


# ---------------------------------------------------------------- dates

def test_naive_datetime_is_utc():
    add_frame("f", "1d", datetime(2024, 1, 1), datetime(2024, 1, 3))
    frame = get_frame("f")
    assert frame.start_date.tzinfo is not None and frame.start_date == START
    assert frame.start_ms == 1704067200000


def test_epoch_ms_and_date_and_aware_non_utc_accepted():
    plus2 = timezone(timedelta(hours=2))
    add_frame("f", "1m", 1704067200000, datetime(2024, 1, 2, 2, 0, tzinfo=plus2))
    frame = get_frame("f")
    assert frame.start_date == START and frame.start_date.tzinfo == UTC
    assert frame.end_date.utcoffset() == timedelta(0) and frame.end_ms == 1704153600000
    add_frame("g", "1m", date(2024, 1, 1), date(2024, 1, 2))
    assert (get_frame("g").start_ms, get_frame("g").end_ms) == (frame.start_ms, frame.end_ms)


def test_start_equal_end_allowed_start_after_end_rejected():
    add_frame("same", "1m", START, START)
    message = fails(add_frame, "f", "1m", END, START)
    assert "add_frame(frame_name='f')" in message
    assert "2024-01-02T00:00:00.000Z" in message and "2024-01-01T00:00:00.000Z" in message
    assert "start_date" in message and "end_date" in message
    assert [f.frame_name for f in list_frames()] == ["same"]


# ---------------------------------------------------------------- validation failures

@pytest.mark.parametrize("call, kwargs, words", [
    (add_exchange, dict(exchange_name="", get_candles=get_candles), ["exchange_name", "non-empty str"]),
    (add_exchange, dict(exchange_name=3, get_candles=get_candles), ["exchange_name", "int"]),
    (add_exchange, dict(exchange_name="e", get_candles=None), ["'get_candles'", "callable"]),
    (add_exchange, dict(exchange_name="e", get_candles=get_candles, format_price="x"), ["'format_price'"]),
    (add_exchange, dict(exchange_name="e", get_candles=get_candles, format_quantity=1), ["'format_quantity'"]),
    (add_exchange, dict(exchange_name="e", get_candles=get_candles, note=5), ["'note'", "int"]),
    (add_frame, dict(frame_name="e", interval="1w", start_date=START, end_date=END), ["'interval'", "3d", "'1w'"]),
    (add_frame, dict(frame_name="e", interval="1m", start_date="2024-01-01", end_date=END), ["'start_date'", "datetime"]),
    (add_frame, dict(frame_name="e", interval="1m", start_date=START, end_date=1.5), ["'end_date'", "float"]),
    (add_frame, dict(frame_name="e", interval="1m", start_date=True, end_date=END), ["'start_date'", "bool"]),
    (add_strategy, dict(strategy_name="e", interval="2h", get_signal=get_signal), ["'interval'", "1h", "'2h'"]),
    (add_strategy, dict(strategy_name="e", interval="1m", get_signal="nope"), ["'get_signal'", "callable"]),
    (add_strategy, dict(strategy_name="e", interval="1m", get_signal=get_signal, risk_name=1), ["'risk_name'"]),
    (add_strategy, dict(strategy_name="e", interval="1m", get_signal=get_signal, risk_list="r"), ["'risk_list'", "list or tuple"]),
    (add_strategy, dict(strategy_name="e", interval="1m", get_signal=get_signal, risk_list=["r", "r"]), ["'risk_list'", "duplicate", "'r'"]),
    (add_strategy, dict(strategy_name="e", interval="1m", get_signal=get_signal, risk_list=["r", 2]), ["'risk_list'", "int"]),
    (add_strategy, dict(strategy_name="e", interval="1m", get_signal=get_signal, callbacks={"on_open": 1}), ["callbacks.on_open", "callable"]),
    (add_strategy, dict(strategy_name="e", interval="1m", get_signal=get_signal, callbacks=SimpleNamespace(on_close="x")), ["callbacks.on_close"]),
    (add_risk, dict(risk_name="e", validations=check), ["'validations'", "list or tuple"]),
    (add_risk, dict(risk_name="e", validations=[check, 42]), ["'validations[1].validate'", "callable"]),
    (add_risk, dict(risk_name="e", validations=[{"note": "no fn"}]), ["'validations[0].validate'"]),
    (add_risk, dict(risk_name="e", validations=[{"validate": check, "note": 3}]), ["'validations[0].note'", "int"]),
    (add_risk, dict(risk_name="e", validations=[{"validate": check, "notes": "x"}]), ["'validations[0]'", "'notes'"]),
    (add_sizing, dict(sizing_name="e", method="fixed"), ["'method'", "fixed-percentage", "'fixed'"]),
    (add_sizing, dict(sizing_name="e", method="fixed-percentage"), ["'risk_percentage'", "required"]),
    (add_sizing, dict(sizing_name="e", method="fixed-percentage", risk_percentage=0), ["'risk_percentage'", "> 0"]),
    (add_sizing, dict(sizing_name="e", method="fixed-percentage", risk_percentage=101), ["'risk_percentage'", "<= 100"]),
    (add_sizing, dict(sizing_name="e", method="fixed-percentage", risk_percentage="1"), ["'risk_percentage'", "str"]),
    (add_sizing, dict(sizing_name="e", method="fixed-percentage", risk_percentage=True), ["'risk_percentage'", "bool"]),
    (add_sizing, dict(sizing_name="e", method="kelly-criterion", kelly_multiplier=0), ["'kelly_multiplier'"]),
    (add_sizing, dict(sizing_name="e", method="kelly-criterion", kelly_multiplier=float("nan")), ["'kelly_multiplier'", "finite"]),
    (add_sizing, dict(sizing_name="e", method="atr-based", risk_percentage=1, atr_multiplier=-2), ["'atr_multiplier'"]),
    (add_sizing, dict(sizing_name="e", method="atr-based"), ["'risk_percentage'", "atr-based"]),
    (add_sizing, dict(sizing_name="e", method="kelly-criterion", max_position_percentage=150), ["'max_position_percentage'"]),
    (add_sizing, dict(sizing_name="e", method="kelly-criterion", min_position_size=-1), ["'min_position_size'", ">= 0"]),
    (add_sizing, dict(sizing_name="e", method="kelly-criterion", max_position_size=0), ["'max_position_size'", "> 0"]),
    (add_sizing, dict(sizing_name="e", method="kelly-criterion", min_position_size=5, max_position_size=1), ["'min_position_size'", "'max_position_size'"]),
    (add_sizing, dict(sizing_name="e", method="kelly-criterion", risk_percentage=1), ["unknown parameter", "'risk_percentage'", "kelly-criterion"]),
    (add_sizing, dict(sizing_name="e", method="fixed-percentage", risk_percentage=1, kelly_multiplier=1, foo=2), ["'kelly_multiplier'", "'foo'"]),
    (add_sizing, dict(sizing_name="e", method="kelly-criterion", note=1), ["'note'"]),
    (add_walker, dict(walker_name="e", exchange_name="", frame_name="f", strategies=["a"]), ["'exchange_name'"]),
    (add_walker, dict(walker_name="e", exchange_name="x", frame_name=None, strategies=["a"]), ["'frame_name'", "None"]),
    (add_walker, dict(walker_name="e", exchange_name="x", frame_name="f", strategies=[]), ["'strategies'", "empty"]),
    (add_walker, dict(walker_name="e", exchange_name="x", frame_name="f", strategies="a"), ["'strategies'", "list or tuple"]),
    (add_walker, dict(walker_name="e", exchange_name="x", frame_name="f", strategies=["a", "b", "a"]), ["'strategies'", "duplicate"]),
    (add_walker, dict(walker_name="e", exchange_name="x", frame_name="f", strategies=["a"], metric="sharpeRatio"), ["'metric'", "sharpe_ratio", "'sharpeRatio'"]),
    (add_walker, dict(walker_name="e", exchange_name="x", frame_name="f", strategies=["a"], callbacks={"on_complete": 1}), ["callbacks.on_complete"]),
])
def test_validation_failure_names_call_schema_and_field(call, kwargs, words):
    message = fails(call, **kwargs)
    name_key = next(iter(kwargs))
    if isinstance(kwargs[name_key], str) and kwargs[name_key]:
        assert f"{call.__name__}({name_key}='e')" in message
    else:
        assert call.__name__ in message and name_key in message
    for word in words:
        assert word in message, (word, message)
    # D7: nothing registered.
    lister = {add_exchange: list_exchanges, add_frame: list_frames, add_strategy: list_strategies,
              add_risk: list_risks, add_sizing: list_sizings, add_walker: list_walkers}[call]
    assert lister() == []


def test_interval_message_format():
    message = fails(add_strategy, strategy_name="x", interval="2h", get_signal=get_signal)
    assert message == ("add_strategy(strategy_name='x'): field 'interval' must be one of "
                       "1m, 3m, 5m, 15m, 30m, 1h, got '2h'")


@pytest.mark.parametrize("call, kwargs, kind", [
    (add_strategy, dict(strategy_name="x", interval="1m", get_signal=get_signal), "on_open"),
    (add_exchange, dict(exchange_name="x", get_candles=get_candles), "on_candle_data"),
    (add_frame, dict(frame_name="x", interval="1m", start_date=START, end_date=END), "on_timeframe"),
    (add_risk, dict(risk_name="x", validations=[]), "on_rejected"),
    (add_walker, dict(walker_name="x", exchange_name="e", frame_name="f", strategies=["a"]), "on_complete"),
    (add_sizing, dict(sizing_name="x", method="kelly-criterion"), "on_calculate"),
])
def test_unknown_callback_key_rejected(call, kwargs, kind):
    camel = "on" + "".join(part.title() for part in kind.split("_")[1:])  # e.g. onOpen
    message = fails(call, **kwargs, callbacks={camel: print})
    assert repr(camel) in message and "callbacks" in message and kind in message
    call(**kwargs, callbacks={kind: print})  # the snake_case name is accepted


def test_callbacks_object_and_callback_helper():
    async def on_open(symbol, signal, price, backtest):
        return None

    obj = SimpleNamespace(on_open=on_open, on_close=None, other="ignored")
    add_strategy("s", "1m", get_signal, callbacks=obj)
    schema = get_strategy("s")
    assert callback(schema.callbacks, "on_open") is on_open
    assert callback(schema.callbacks, "on_close") is None
    assert callback(schema.callbacks, "on_tick") is None
    assert callback({"on_tick": print}, "on_tick") is print
    assert callback({"on_tick": print}, "on_idle") is None
    assert callback(None, "on_tick") is None


# ---------------------------------------------------------------- duplicates and D7

def test_duplicate_names_rejected():
    add_strategy("x", "1m", get_signal)
    assert fails(add_strategy, "x", "5m", get_signal) == "add_strategy: strategy 'x' is already registered"
    assert get_strategy("x").interval == "1m"
    add_exchange("x", get_candles)
    assert "add_exchange: exchange 'x' is already registered" in fails(add_exchange, "x", get_candles)
    add_frame("x", "1m", START, END)
    assert "frame 'x'" in fails(add_frame, "x", "1m", START, END)
    add_risk("x", [])
    assert "risk 'x'" in fails(add_risk, "x", [])
    add_sizing("x", "kelly-criterion")
    assert "sizing 'x'" in fails(add_sizing, "x", "kelly-criterion")
    add_walker("x", "e", "f", ["a"])
    assert "walker 'x'" in fails(add_walker, "x", "e", "f", ["a"])


def test_rejected_schema_leaves_no_trace():
    add_strategy("a", "1m", get_signal)
    fails(add_strategy, "b", "2h", get_signal)
    assert [s.strategy_name for s in list_strategies()] == ["a"]
    fails(get_strategy, "b")
    add_strategy("b", "1h", get_signal)  # corrected registration with the same name succeeds
    assert [s.strategy_name for s in list_strategies()] == ["a", "b"]

    fails(add_sizing, "s", "fixed-percentage", risk_percentage=-1)
    add_sizing("s", "fixed-percentage", risk_percentage=1)
    fails(add_frame, "f", "1m", END, START)
    add_frame("f", "1m", START, END)
    fails(add_risk, "r", [1])
    add_risk("r", [check])
    assert len(list_sizings()) == len(list_frames()) == len(list_risks()) == 1


def test_reset_clears_everything():
    add_exchange("e", get_candles)
    add_frame("f", "1m", START, END)
    add_strategy("s", "1m", get_signal)
    add_risk("r", [])
    add_sizing("z", "kelly-criterion")
    add_walker("w", "e", "f", ["s"])
    bk.reset()
    assert not any([list_exchanges(), list_frames(), list_strategies(), list_risks(), list_sizings(), list_walkers()])


# ---------------------------------------------------------------- lookups

@pytest.mark.parametrize("getter, kind, plural", [
    (get_exchange, "exchange", "exchanges"), (get_frame, "frame", "frames"),
    (get_strategy, "strategy", "strategies"), (get_risk, "risk", "risks"),
    (get_sizing, "sizing", "sizings"), (get_walker, "walker", "walkers"),
])
def test_get_unknown_name_when_none_registered(getter, kind, plural):
    message = fails(getter, "x", "Backtest.run")
    assert message == f"{kind} 'x' not found (called from Backtest.run); registered {plural}: none"


def test_get_unknown_name_lists_registered():
    add_strategy("a", "1m", get_signal)
    add_strategy("b", "1m", get_signal)
    assert fails(get_strategy, "x", "Backtest.run") == \
        "strategy 'x' not found (called from Backtest.run); registered strategies: a, b"
    assert "registered strategies: a, b" in fails(get_strategy, ["unhashable"], "Live.run")


def test_validate_strategy_refs_catches_missing_risk():
    add_risk("r1", [])
    add_strategy("s", "1m", get_signal, risk_name="r1", risk_list=["r2"])
    message = fails(validate_strategy_refs, "s", "Backtest.run")
    assert "risk 'r2' not found" in message and "Backtest.run" in message
    assert "registered risks: r1" in message and "strategy 's'" in message
    assert "strategy 'nope' not found" in fails(validate_strategy_refs, "nope", "Live.run")
    add_risk("r2", [])
    assert validate_strategy_refs("s", "Backtest.run").strategy_name == "s"


def test_validate_walker_refs():
    add_walker("w", "e", "f", ["s"])
    assert "exchange 'e' not found (called from Walker.run)" in fails(validate_walker_refs, "w", "Walker.run")
    add_exchange("e", get_candles)
    assert "frame 'f' not found" in fails(validate_walker_refs, "w", "Walker.run")
    add_frame("f", "1d", START, END)
    assert "strategy 's' not found" in fails(validate_walker_refs, "w", "Walker.run")
    add_strategy("s", "1m", get_signal, risk_name="r")
    assert "risk 'r' not found" in fails(validate_walker_refs, "w", "Walker.run")
    add_risk("r", [])
    assert validate_walker_refs("w", "Walker.run").walker_name == "w"
