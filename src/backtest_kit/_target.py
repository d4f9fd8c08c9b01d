"""A user's strategy named on the command line: `path/to/file.py:attr` or `package.module:attr`,
with `--param name=value` passed to it when it is a factory (`N.name=value`: the N-th TARGET only)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import ValidationError


def _value(text: str) -> Any:
    """A Python literal (5, 0.6, True, "x") or else the plain text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """`name=value` pairs; values are Python literals (5, 0.6, True, "x") or else plain text."""
    params: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip().isidentifier():
            raise ValidationError(f"--param {item!r}: expected name=value with a Python identifier as the name")
        params[name.strip()] = _value(text)
    return params


def split_params(items: Sequence[str], count: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The --param values for `count` TARGETs: (`name=value` ones, for every TARGET; `N.name=value`
    ones of each TARGET, numbered from 1). A TARGET's own value wins over a shared one."""
    common: dict[str, Any] = {}
    own: list[dict[str, Any]] = [{} for _ in range(count)]
    for item in items:
        key, sep, text = item.partition("=")
        index, dot, name = key.strip().rpartition(".")
        if not sep or not name.isidentifier() or (dot and not index.isdigit()):
            raise ValidationError(f"--param {item!r}: expected name=value, or N.name=value for the N-th TARGET, "
                                  "with a Python identifier as the name")
        if not dot:
            common[name] = _value(text)
        elif 1 <= int(index) <= count:
            own[int(index) - 1][name] = _value(text)
        else:
            raise ValidationError(f"--param {item!r}: there is no TARGET {int(index)} "
                                  f"({count} given, numbered from 1)")
    return common, own


def _exec_file(target: str, path: Path) -> ModuleType:
    name = f"backtest_kit_target_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValidationError(f"strategy {target!r}: {path} cannot be loaded as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # so dataclasses and pickling inside it resolve
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's file: any error while running it is reported, not raised through
        sys.modules.pop(name, None)
        raise ValidationError(f"strategy {target!r}: running {path} raised {type(e).__name__}: {e}") from e
    return module


def load_target(target: str, loaded: dict[str, ModuleType] | None = None) -> Callable[..., Any]:
    """The callable `attr` of `file.py:attr` (loaded from that file) or `module:attr` (imported).
    `loaded` (file or module name -> module) lets several TARGETs of one file run it once."""
    where, sep, attr = target.rpartition(":")
    if not sep or not where or not attr.isidentifier():
        raise ValidationError(f"strategy {target!r}: expected FILE.py:NAME or MODULE:NAME")
    module = None if loaded is None else loaded.get(where)
    if module is None and where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise ValidationError(f"strategy {target!r}: no file {path}")
        module = _exec_file(target, path)
    elif module is None:
        try:
            module = importlib.import_module(where)
        except ImportError as e:
            raise ValidationError(f"strategy {target!r}: cannot import {where}: {e}") from None
        except Exception as e:  # the user's module failed while being imported
            raise ValidationError(f"strategy {target!r}: importing {where} raised {type(e).__name__}: {e}") from e
    if loaded is not None:
        loaded[where] = module
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValidationError(f"strategy {target!r}: {where} has no callable {attr!r}")
    return fn  # type: ignore[no-any-return]


def make_strategy(target: str, fn: Callable[..., Any], params: Mapping[str, Any]) -> Callable[..., Any]:
    """`fn` itself without params; with params, what the factory `fn(**params)` returns."""
    if not params:
        return fn
    shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
    try:
        inspect.signature(fn).bind(**params)
    except TypeError as e:
        raise ValidationError(f"strategy {target!r}: cannot be called with --param {shown} ({e}); "
                              "--param is for a factory that returns a get_signal") from None
    except ValueError:  # no signature to check (a builtin): the call below says what is wrong
        pass
    try:
        made = fn(**params)
    except Exception as e:  # the user's factory: reported as a bad TARGET, not a traceback
        raise ValidationError(f"strategy {target!r}: called with --param {shown} it raised "
                              f"{type(e).__name__}: {e}") from e
    if not callable(made):
        raise ValidationError(f"strategy {target!r}: called with --param it must return a get_signal, "
                              f"got {type(made).__name__}")
    return made  # type: ignore[no-any-return]


def strategy_from(target: str, params: Sequence[str]) -> Callable[..., Any]:
    """The get_signal of `target`: the callable itself, or what it returns when called with the
    --param values (a factory)."""
    return make_strategy(target, load_target(target), parse_params(params))


def target_name(target: str, own: Mapping[str, Any]) -> str:
    """`file:attr` (the file's stem) or `module:attr`, plus `(name=value, ...)` of its own params."""
    where, _, attr = target.rpartition(":")
    base = f"{Path(where).stem if where.endswith('.py') else where}:{attr}"
    return base + (f"({', '.join(f'{k}={v!r}' for k, v in own.items())})" if own else "")


def strategies_from(targets: Sequence[str], items: Sequence[str]) -> list[tuple[str, Callable[..., Any]]]:
    """(strategy name, get_signal) of each TARGET, in order, with its --param values applied."""
    common, own = split_params(items, len(targets))
    loaded: dict[str, ModuleType] = {}
    made: list[tuple[str, Callable[..., Any]]] = []
    for n, target in enumerate(targets):
        name = target_name(target, own[n])
        twin = next((i for i, (other, _) in enumerate(made) if other == name), None)
        if twin is not None:
            raise ValidationError(f"TARGETs {twin + 1} and {n + 1} are both {name!r}; tell them apart with "
                                  f"--param {n + 1}.name=value")
        made.append((name, make_strategy(target, load_target(target, loaded), {**common, **own[n]})))
    return made
