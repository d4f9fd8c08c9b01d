"""`to_dict()` and a notebook table (`_repr_html_`) for the statistics and result dataclasses.

>>> from dataclasses import dataclass, field
>>> @dataclass
... class Stats(Tabular):
...     name: str
...     rows: list = field(default_factory=list)
>>> Stats("a", [Stats("b")]).to_dict()
{'name': 'a', 'rows': [{'name': 'b', 'rows': []}]}
"""

from __future__ import annotations

import dataclasses
import html
from typing import Any

MAX_ROWS = 50  # rows of a nested list shown in a notebook


def plain(value: object) -> object:
    """Dataclasses as dicts, lists and tuples as lists, all the way down."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _cell(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.6g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_cell(x)}" for k, x in v.items() if not isinstance(x, (dict, list)))
    return str(v)


def _table(rows: list[Any]) -> str:
    dicts = [r for r in rows if isinstance(r, dict)]
    if not dicts:
        return html.escape(", ".join(_cell(r) for r in rows[:MAX_ROWS]))
    columns = [k for k, v in dicts[0].items() if not isinstance(v, list)]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c)))}</td>" for c in columns) + "</tr>"
                   for r in dicts[:MAX_ROWS])
    more = f"<caption>{MAX_ROWS} of {len(dicts)}</caption>" if len(dicts) > MAX_ROWS else ""
    return f"<table>{more}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Tabular:
    """Mixed into a dataclass: every field as plain values, and an HTML table for notebooks."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain Python values (nested results as dicts)."""
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def _repr_html_(self) -> str:
        rows = []
        for k, v in self.to_dict().items():
            shown = _table(v) if isinstance(v, list) and v else html.escape(_cell(v))
            rows.append(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{shown}</td></tr>")
        return f"<table><caption>{html.escape(type(self).__name__)}</caption>{''.join(rows)}</table>"
