"""Validation of restored live state: a saved document must belong to this run and hold what
the engine itself would have written, or the start stops with a PersistError naming the file
and the field. Nothing corrupt or foreign is ever traded, merged or replaced by a fresh start.

Positions and orders are checked with the static rules of new signals (position, finite
positive prices on the right sides of price_open, a positive whole lifetime, timestamps);
the distance limits of the CC_* config are not re-applied: the config may have changed since
the position opened, and a marketable limit order opens at the tick's price (D22).
"""

from __future__ import annotations

import math
from dataclasses import MISSING, fields
from typing import Any

from .errors import PersistError
from .events import ActivePosition, SignalRow

MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last representable datetime
_ROW_FIELDS = {f.name: f for f in fields(SignalRow)}
_REQUIRED = tuple(n for n, f in _ROW_FIELDS.items() if f.default is MISSING and f.default_factory is MISSING)
_DOC_FIELDS = ("symbol", "strategy_name", "exchange_name", "pending", "scheduled", "journal")
_CLOSE_REASONS = ("take_profit", "stop_loss", "time_expired", "end_of_data")
_PNL_FIELDS = ("pnl_percentage", "price_open", "price_close")


class _Bad(Exception):
    """One field that breaks a rule: (field path, problem)."""

    def __init__(self, field: str, problem: str):
        super().__init__(field, problem)
        self.field, self.problem = field, problem


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _corrupt(where: str, bad: _Bad) -> PersistError:
    return PersistError(f"saved live state {where} is corrupt: field '{bad.field}' {bad.problem}; fix or move "
                        "it away before restarting — it may hold an open position")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _price(field: str, x: Any) -> float:
    if not _is_number(x) or not math.isfinite(x) or x <= 0:
        raise _Bad(field, f"must be a finite positive number, got {_show(x)}")
    return float(x)


def _timestamp(field: str, x: Any, optional: bool = False) -> None:
    if optional and x is None:
        return
    if not _is_int(x) or not 0 <= x <= MAX_MS:
        raise _Bad(field, f"must be epoch milliseconds (an int from 0 to {MAX_MS}), got {_show(x)}")


def _text(field: str, x: Any, non_empty: bool = False) -> None:
    if not isinstance(x, str) or (non_empty and not x):
        raise _Bad(field, f"must be a{' non-empty' if non_empty else ''} str, got {_show(x)}")


def check_row(value: Any, field: str, symbol: str, strategy_name: str, exchange_name: str | None,
              scheduled: bool | None) -> None:
    """A saved SignalRow: shape, the rules of new signals, and that it is this run's.
    `scheduled`: True for a waiting order, False for an open position, None for either."""
    if not isinstance(value, dict):
        raise _Bad(field, f"must be a signal object, got {_show(value)}")
    unknown = sorted(k for k in value if k not in _ROW_FIELDS)
    if unknown:
        raise _Bad(field, f"has unknown key(s) {', '.join(map(repr, unknown))}")
    missing = [k for k in _REQUIRED if k not in value]
    if missing:
        raise _Bad(field, f"misses key(s) {', '.join(map(repr, missing))}")
    f = f"{field}."
    _text(f + "id", value["id"], non_empty=True)
    position = value["position"]
    if position not in ("long", "short") or not isinstance(position, str):
        raise _Bad(f + "position", f"must be 'long' or 'short', got {_show(position)}")
    o = _price(f + "price_open", value["price_open"])
    tp = _price(f + "price_take_profit", value["price_take_profit"])
    sl = _price(f + "price_stop_loss", value["price_stop_loss"])
    long = position == "long"
    if not (tp > o if long else tp < o):
        raise _Bad(f + "price_take_profit", f"({tp!r}) must be {'>' if long else '<'} price_open ({o!r}) "
                                            f"for a {position}")
    if not (sl < o if long else sl > o):
        raise _Bad(f + "price_stop_loss", f"({sl!r}) must be {'<' if long else '>'} price_open ({o!r}) "
                                          f"for a {position}")
    met = value["minute_estimated_time"]
    if not (_is_number(met) and math.isfinite(met) and met > 0 and float(met).is_integer()):
        raise _Bad(f + "minute_estimated_time", f"must be a positive whole number of minutes, got {_show(met)}")
    _text(f + "note", value["note"])
    for name, expected in (("symbol", symbol), ("strategy_name", strategy_name), ("exchange_name", exchange_name)):
        _text(f + name, value[name])
        if expected is not None and value[name] != expected:
            raise _Bad(f + name, f"is {value[name]!r}: the signal belongs to another run, not {expected!r}")
    _timestamp(f + "scheduled_at", value["scheduled_at"])
    _timestamp(f + "pending_at", value["pending_at"])
    if value["pending_at"] < value["scheduled_at"]:
        raise _Bad(f + "pending_at", f"({value['pending_at']}) is before scheduled_at ({value['scheduled_at']})")
    is_scheduled = value.get("is_scheduled", False)
    if not isinstance(is_scheduled, bool) or (scheduled is not None and is_scheduled is not scheduled):
        want = "a bool" if scheduled is None else repr(scheduled)
        raise _Bad(f + "is_scheduled", f"must be {want}, got {_show(is_scheduled)}")
    order_type = value.get("order_type", "limit")
    if order_type not in ("limit", "stop") or not isinstance(order_type, str):
        raise _Bad(f + "order_type", f"must be 'limit' or 'stop', got {_show(order_type)}")
    quantity = value.get("quantity")
    if quantity is not None and not (_is_number(quantity) and math.isfinite(quantity) and quantity > 0):
        raise _Bad(f + "quantity", f"must be a finite positive number or null, got {_show(quantity)}")


def _journal_entry(entry: Any, field: str, symbol: str, strategy_name: str) -> None:
    if not isinstance(entry, dict):
        raise _Bad(field, f"must be a trade object, got {_show(entry)}")
    f = f"{field}."
    action = entry.get("action")
    if action not in ("closed", "cancelled") or not isinstance(action, str):
        raise _Bad(f + "action", f"must be 'closed' or 'cancelled', got {_show(action)}")
    for key in ("signal", "current_price", "close_timestamp") + (("close_reason", "pnl") if action == "closed" else ()):
        if key not in entry:
            raise _Bad(f + key, "is missing")
    check_row(entry["signal"], f + "signal", symbol, strategy_name, None, None)
    _price(f + "current_price", entry["current_price"])
    _timestamp(f + "close_timestamp", entry["close_timestamp"])
    began = entry["signal"]["pending_at" if action == "closed" else "scheduled_at"]
    if entry["close_timestamp"] < began:
        raise _Bad(f + "close_timestamp", f"({entry['close_timestamp']}) is before the signal began ({began})")
    if action == "closed":
        reason = entry["close_reason"]
        if reason not in _CLOSE_REASONS or not isinstance(reason, str):
            raise _Bad(f + "close_reason", f"must be one of {', '.join(_CLOSE_REASONS)}, got {_show(reason)}")
        pnl = entry["pnl"]
        if not isinstance(pnl, dict) or sorted(pnl) != sorted(_PNL_FIELDS):
            raise _Bad(f + "pnl", f"must be an object with {', '.join(_PNL_FIELDS)}, got {_show(pnl)}")
        for key in _PNL_FIELDS:
            x = pnl[key]
            if not _is_number(x) or not math.isfinite(x):
                raise _Bad(f"{f}pnl.{key}", f"must be a finite number, got {_show(x)}")


def check_live_document(data: Any, where: str, symbol: str, strategy_name: str) -> dict[str, Any]:
    """The document of LiveStore.load: an object of this symbol and strategy with a valid journal."""
    try:
        if not isinstance(data, dict):
            raise _Bad("(document)", f"must be a JSON object, got {_show(data)}")
        for key in _DOC_FIELDS:
            if key not in data:
                raise _Bad(key, "is missing")
        for key in ("symbol", "strategy_name", "exchange_name"):
            _text(key, data[key])
        journal = data["journal"]
        if not isinstance(journal, list):
            raise _Bad("journal", f"must be a list of trades, got {_show(journal)}")
    except _Bad as bad:
        raise _corrupt(where, bad) from None
    if (data["symbol"], data["strategy_name"]) != (symbol, strategy_name):
        raise PersistError(f"saved live state {where} belongs to symbol {data['symbol']!r} and strategy "
                           f"{data['strategy_name']!r}, not {symbol!r} and {strategy_name!r}; it is not "
                           "merged — move it away if it is not this run's")
    try:
        for i, entry in enumerate(journal):
            _journal_entry(entry, f"journal[{i}]", symbol, strategy_name)
    except _Bad as bad:
        raise _corrupt(where, bad) from None
    return data


def check_restored(data: dict[str, Any], where: str, symbol: str, strategy_name: str, exchange_name: str) -> None:
    """What Machine.restore takes over: this exchange's, valid rows, partial levels, bucket, cursor."""
    saved_exchange = data.get("exchange_name")
    if saved_exchange != exchange_name:
        raise PersistError(
            f"saved live state of {symbol}/{strategy_name} belongs to exchange {saved_exchange!r}, not "
            f"{exchange_name!r}; it may hold an open position — close it there or remove {where}")
    try:
        pending, scheduled = data.get("pending"), data.get("scheduled")
        if pending is not None:
            check_row(pending, "pending", symbol, strategy_name, exchange_name, False)
        if scheduled is not None:
            check_row(scheduled, "scheduled", symbol, strategy_name, exchange_name, True)
        if pending is not None and scheduled is not None:
            raise _Bad("scheduled", "is set while a position is open (pending): both cannot be")
        partial = data.get("partial", {})
        if not isinstance(partial, dict):
            raise _Bad("partial", f"must be an object of signal id -> [profit levels, loss levels], got "
                                  f"{_show(partial)}")
        for sid, levels in partial.items():
            if not (isinstance(levels, list) and len(levels) == 2 and all(
                    isinstance(side, list) and all(_is_int(x) and 0 < x <= 100 for x in side) for side in levels)):
                raise _Bad(f"partial.{sid}", f"must be [profit levels, loss levels] of ints 10..100, got "
                                             f"{_show(levels)}")
        bucket = data.get("last_bucket")
        if bucket is not None and not _is_int(bucket):
            raise _Bad("last_bucket", f"must be an int or null, got {_show(bucket)}")
        cursor = data.get("cursor")
        _timestamp("cursor", cursor, optional=True)
        _timestamp("evaluated_to", data.get("evaluated_to"), optional=True)
        fingerprint = data.get("fingerprint")
        if fingerprint is not None and not isinstance(fingerprint, dict):
            raise _Bad("fingerprint", f"must be an object or null, got {_show(fingerprint)}")
        # The cursor is the last tick: nothing saved can have happened after it.
        for name, row, at in (("pending", pending, "pending_at"), ("scheduled", scheduled, "scheduled_at")):
            if cursor is not None and row is not None and row[at] > cursor:
                raise _Bad(f"{name}.{at}", f"({row[at]}) is after the last tick saved (cursor {cursor})")
    except _Bad as bad:
        raise _corrupt(where, bad) from None


def risk_positions(data: Any, where: str) -> dict[str, ActivePosition]:
    """The active positions of a saved risk book ([] when `data` is None), keyed strategy:symbol."""
    out: dict[str, ActivePosition] = {}
    if data is None:
        return out
    try:
        if not isinstance(data, list):
            raise _Bad("(document)", f"must be a list of positions, got {_show(data)}")
        for i, p in enumerate(data):
            f = f"[{i}]"
            if not isinstance(p, dict):
                raise _Bad(f, f"must be a position object, got {_show(p)}")
            for key in ("strategy_name", "symbol"):
                _text(f"{f}.{key}", p.get(key), non_empty=True)
            _timestamp(f"{f}.open_timestamp", p.get("open_timestamp"))
            signal = p.get("signal")
            if signal is not None:
                check_row(signal, f"{f}.signal", p["symbol"], p["strategy_name"], None, None)
            out[f"{p['strategy_name']}:{p['symbol']}"] = ActivePosition(
                p["strategy_name"], p["symbol"], SignalRow(**signal) if signal is not None else None,
                p["open_timestamp"])
    except _Bad as bad:
        raise PersistError(f"saved risk positions {where} are corrupt: field '{bad.field}' {bad.problem}; "
                           "fix or move the file away before restarting") from None
    return out
