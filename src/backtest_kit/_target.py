"""A user's strategy named on the command line: `path/to/file.py:attr` or `package.module:attr`,
with `--param name=value` passed to it when it is a factory."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import ValidationError


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """`name=value` pairs; values are Python literals (5, 0.6, True, "x") or else plain text."""
    params: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip().isidentifier():
            raise ValidationError(f"--param {item!r}: expected name=value with a Python identifier as the name")
        try:
            params[name.strip()] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            params[name.strip()] = text
    return params


def load_target(target: str) -> Callable[..., Any]:
    """The callable `attr` of `file.py:attr` (loaded from that file) or `module:attr` (imported)."""
    where, sep, attr = target.rpartition(":")
    if not sep or not where or not attr.isidentifier():
        raise ValidationError(f"strategy {target!r}: expected FILE.py:NAME or MODULE:NAME")
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise ValidationError(f"strategy {target!r}: no file {path}")
        name = f"backtest_kit_target_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ValidationError(f"strategy {target!r}: {path} cannot be loaded as Python")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # so dataclasses and pickling inside it resolve
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as e:
            raise ValidationError(f"strategy {target!r}: cannot import {where}: {e}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValidationError(f"strategy {target!r}: {where} has no callable {attr!r}")
    return fn  # type: ignore[no-any-return]


def strategy_from(target: str, params: Sequence[str]) -> Callable[..., Any]:
    """The get_signal of `target`: the callable itself, or what it returns when called with the
    --param values (a factory)."""
    fn = load_target(target)
    if not params:
        return fn
    made = fn(**parse_params(params))
    if not callable(made):
        raise ValidationError(f"strategy {target!r}: called with --param it must return a get_signal, "
                              f"got {type(made).__name__}")
    return made  # type: ignore[no-any-return]
