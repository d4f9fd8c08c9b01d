"""Report columns, the markdown table renderer and the number formats every report shares."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any, TypeGuard

from .._time import iso

_CTX = Context(prec=80)


@dataclass(slots=True)
class Column:
    """One report column: `format(row)` or `format(row, index)` gives the cell; sync or async."""

    key: str
    label: str
    format: Callable[..., Any]
    is_visible: Callable[[], Any] = lambda: True


def _takes_index(fn: Callable[..., Any]) -> bool:
    """True when fn accepts a second positional argument (the row index)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: call with the row only
        return False
    positional = 0
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            return True
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 2


def _cell(value: Any) -> str:
    """Cell text: pipes escaped, line breaks turned into spaces."""
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def _line(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


async def render_table(rows: Iterable[Any], columns: Sequence[Column]) -> str:
    """Markdown table of rows over the visible columns ('' when no column is visible)."""
    visible = []
    for col in columns:
        shown = col.is_visible()
        if inspect.isawaitable(shown):
            shown = await shown
        if shown:
            visible.append(col)
    if not visible:
        return ""
    calls = [(c.format, _takes_index(c.format)) for c in visible]
    lines = [_line(_cell(c.label) for c in visible), _line("---" for _ in visible)]
    isawaitable = inspect.isawaitable
    for i, row in enumerate(rows):
        cells = []
        for fn, with_index in calls:
            value = fn(row, i) if with_index else fn(row)
            if isawaitable(value):
                value = await value
            cells.append(_cell(value))
        lines.append(_line(cells))
    return "\n".join(lines)


def _usable(x: object) -> TypeGuard[float]:
    """A finite int or float (not bool)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def to_fixed(x: float, digits: int) -> str:
    """x with exactly `digits` decimals, rounded as JavaScript's Number.toFixed (half away from
    zero); like toFixed, a magnitude of 1e21 or more prints in exponent form ("1e+300")."""
    if x == 0:  # -0.0 prints without a sign, as in JavaScript
        x = 0.0
    if abs(x) >= 1e21:
        return repr(float(x))  # the shortest round-trip text, as JavaScript's String(x)
    return f"{Decimal(x).quantize(Decimal(1).scaleb(-digits), ROUND_HALF_UP, _CTX):f}"


def fmt_num(x: float | None, digits: int) -> str:
    """Fixed-point text, or "N/A" for None / non-finite."""
    return to_fixed(x, digits) if _usable(x) else "N/A"


def fmt_price(x: float | None) -> str:
    """A price as "123.45000000 USD", or "N/A"."""
    return f"{to_fixed(x, 8)} USD" if _usable(x) else "N/A"


def fmt_pct(x: float | None, digits: int = 2) -> str:
    """A signed percentage: "+1.23%", "-1.23%", "0.00%", or "N/A"."""
    if not _usable(x):
        return "N/A"
    return f"{'+' if x > 0 else ''}{to_fixed(x, digits)}%"


def fmt_time(ms: int | None) -> str:
    """Epoch milliseconds as an ISO-8601 UTC string, or "N/A"."""
    return "N/A" if ms is None else iso(int(ms))


def js_round(x: float) -> int:
    """Math.round of JavaScript (half up)."""
    return math.floor(x + 0.5)
