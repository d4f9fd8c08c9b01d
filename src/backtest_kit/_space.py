"""Parameter spaces of a sweep: a grid of values, or Optuna distributions, and their CLI spelling.

>>> grid({"fast": range(5, 15, 5), "slow": [50, 100]})
[{'fast': 5, 'slow': 50}, {'fast': 5, 'slow': 100}, {'fast': 10, 'slow': 50}, {'fast': 10, 'slow': 100}]
>>> parse_space(["fast=5:15:5", "slow=50,100", "mode=fast"])
{'fast': [5, 10, 15], 'slow': [50, 100], 'mode': ['fast']}
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import ValidationError

MAX_GRID = 1_000_000  # a grid larger than this is a typo, not a study

Params = dict[str, Any]


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers, so parameters print, compare and serialise plainly."""
    return value.item() if isinstance(value, np.generic) else value


def _values(call: str, name: str, spec: Any) -> list[Any]:
    if isinstance(spec, (str, bytes)) or not isinstance(spec, (Sequence, range, np.ndarray, set, frozenset)):
        return [_plain(spec)]  # a scalar: the parameter is fixed
    values = [_plain(v) for v in (sorted(spec) if isinstance(spec, (set, frozenset)) else spec)]
    if not values:
        raise ValidationError(f"{call}: space[{name!r}] has no values")
    return values


def check_space(call: str, space: Any, search: str) -> dict[str, Any]:
    """The space as a dict of parameter names; a grid's values are listed (and bounded)."""
    if not isinstance(space, Mapping) or not space:
        raise ValidationError(f"{call}: space must be a non-empty dict of parameter name -> values, got {space!r}")
    out: dict[str, Any] = {}
    for name, spec in space.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValidationError(f"{call}: space key {name!r} must be a parameter name (an identifier)")
        if search == "grid":
            if _is_distribution(spec):
                raise ValidationError(f"{call}: space[{name!r}] is an Optuna distribution; use search='optuna' "
                                      "or give a list or range of values for the grid")
            out[name] = _values(call, name, spec)
        else:
            _distribution(call, name, spec)  # checked now, built per trial
            out[name] = spec
    if search == "grid":
        size = math.prod(len(v) for v in out.values())
        if size > MAX_GRID:
            raise ValidationError(f"{call}: the grid has {size:,} points (more than {MAX_GRID:,}); "
                                  "narrow the space or use search='optuna'")
    return out


def grid(space: Mapping[str, Sequence[Any]]) -> list[Params]:
    """Every combination, the first parameter varying slowest (as nested loops in space order)."""
    names = list(space)
    return [dict(zip(names, combo)) for combo in itertools.product(*(space[n] for n in names))]


def _is_distribution(spec: Any) -> bool:
    return type(spec).__module__.startswith("optuna.")


def _distribution(call: str, name: str, spec: Any) -> Any:
    """An Optuna distribution: given, `(low, high)` (int if both ints), a list/range (categorical), a scalar."""
    from optuna import distributions as d

    if isinstance(spec, d.BaseDistribution):
        return spec
    if isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(v, (int, float)) for v in spec):
        low, high = spec
        if not low < high:
            raise ValidationError(f"{call}: space[{name!r}] range ({low}, {high}) needs low < high")
        if isinstance(low, int) and isinstance(high, int):
            return d.IntDistribution(low, high)
        return d.FloatDistribution(float(low), float(high))
    if isinstance(spec, range):
        if len(spec) == 0:
            raise ValidationError(f"{call}: space[{name!r}] is an empty range")
        return d.IntDistribution(spec.start, spec[-1], step=abs(spec.step)) if spec.step > 0 else \
            d.CategoricalDistribution(list(spec))
    return d.CategoricalDistribution(_values(call, name, spec))


def distributions(call: str, space: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _distribution(call, name, spec) for name, spec in space.items()}


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_space(items: Sequence[str], search: str = "grid") -> dict[str, Any]:
    """`name=a:b:step` (inclusive), `name=v1,v2,...` or `name=value`, as on the command line. For an
    Optuna search `a:b` is the range (low, high) and `a:b:step` of ints a stepped range.

    >>> parse_space(["fast=5:30", "slow=50:100:10", "mode=a,b"], search="optuna")
    {'fast': (5, 30), 'slow': range(50, 101, 10), 'mode': ['a', 'b']}
    """
    space: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier() or not text:
            raise ValidationError(f"--space {item!r}: expected name=start:stop:step or name=v1,v2,...")
        if ":" in text:
            parts = [_number(p) for p in text.split(":")]
            if len(parts) not in (2, 3) or not all(isinstance(p, (int, float)) for p in parts):
                raise ValidationError(f"--space {item!r}: a range is start:stop or start:stop:step, in numbers")
            start, stop = parts[0], parts[1]
            step = parts[2] if len(parts) == 3 else 1
            if not isinstance(step, (int, float)) or step <= 0 or stop < start:  # type: ignore[operator]
                raise ValidationError(f"--space {item!r}: needs start <= stop and a positive step")
            if search == "optuna" and len(parts) == 2:
                space[name] = (start, stop)
                continue
            if search == "optuna" and all(isinstance(p, int) for p in parts):
                space[name] = range(int(start), int(stop) + 1, int(step))
                continue
            count = int(math.floor((stop - start) / step + 1e-9)) + 1  # type: ignore[operator]
            values = [start + k * step for k in range(count)]  # type: ignore[operator]
            space[name] = [round(v, 12) if isinstance(v, float) else v for v in values]
        else:
            space[name] = [_number(p.strip()) for p in text.split(",") if p.strip()]
            if not space[name]:
                raise ValidationError(f"--space {item!r}: no values")
    return space


def label(params: Mapping[str, Any]) -> str:
    """`fast=5,slow=50`: how a trial is named in tables and reports."""
    return ",".join(f"{k}={v}" for k, v in params.items())
