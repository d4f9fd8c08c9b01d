"""Where reports find their data (the run log), where they are written, and the
get_data / get_report / dump surface shared by the per-(symbol, strategy) reports."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

from .. import _registry as registry
from .._engine.runs import Run, mode_of, runs
from .._persist import safe_name, state_key
from ..errors import ValidationError
from .backtest import write_report
from .table import Column

RunSource = Callable[[bool], Iterable[Run]]
S = TypeVar("S")  # the statistics a report computes


def default_runs(backtest: bool) -> list[Run]:
    """The latest backtest runs for backtest=True, live runs otherwise."""
    return runs.all(mode_of(backtest))


def find_run(source: RunSource, backtest: bool, symbol: str, strategy_name: str) -> Run | None:
    """The run of (symbol, strategy_name) in that mode, or None when it never ran."""
    return next((r for r in source(backtest) if r.symbol == symbol and r.strategy_name == strategy_name), None)


def report_path(path: str | os.PathLike[str] | None, kind: str, name: str, ext: str = ".md") -> str:
    """`path` as a directory (default ./dump/<kind>) holding <name><ext>, or a file path ending in `ext`.
    `name` is escaped as state keys are (`/`, `..`, NUL, ... become %XX): it never leaves the folder."""
    file = f"{safe_name(name)}{ext}"
    if path is None:
        return os.path.join(".", "dump", kind, file)
    text = os.fspath(path)
    if not isinstance(text, str) or "\0" in text:
        raise ValidationError(f"dump: path must be a str or os.PathLike without NUL characters, got {path!r}")
    return text if text.endswith(ext) else os.path.join(text, file)


def _title(text: str) -> str:
    """The kind part of a report's first line: "# Backtest Report" of "# Backtest Report: s"."""
    return text.split("\n", 1)[0].split(": ", 1)[0]


def _other_kind(target: str, text: str) -> bool:
    """True when `target` exists and is not a report of the same kind as `text` (another
    kind's report, or a file that is not a report): it must not be overwritten."""
    try:
        with open(target, encoding="utf-8", errors="replace") as f:
            first = f.readline(4096)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return _title(first) != _title(text)


async def dump_report(path: str | os.PathLike[str] | None, kind: str, name: str, text: str,
                      ext: str = ".md") -> str:
    """Write a report; returns its absolute path. In a directory given by the caller, a file of
    another kind with the same name (Backtest.dump then Schedule.dump into one folder) is never
    overwritten: this kind's report goes to <name>.<kind>.md instead."""
    target = report_path(path, kind, name, ext)
    folder = None if path is None or target == os.fspath(path) else os.fspath(path)
    if folder is not None and await asyncio.to_thread(_other_kind, target, text):
        target = os.path.join(folder, f"{safe_name(name)}.{kind}{ext}")
    return await write_report(target, text)


class InstanceReport(Generic[S]):
    """A report over the last run of one (symbol, strategy): subclasses say what to compute
    from the run and how to render it."""

    title = ""          # "Schedule": names the calls in validation errors
    folder = ""         # default dump folder under ./dump
    per_symbol = False  # file named <symbol>_<strategy>.md instead of <strategy>.md

    def __init__(self, source: RunSource = default_runs) -> None:
        self._source = source

    def __repr__(self) -> str:
        return f"<backtest_kit.{self.title}>"

    def compute(self, run: Run | None, symbol: str, strategy_name: str) -> S:
        raise NotImplementedError

    async def render(self, symbol: str, strategy_name: str, stats: S,
                     columns: Sequence[Column] | None) -> str:
        raise NotImplementedError

    def _stats(self, symbol: str, strategy_name: str, backtest: bool, method: str) -> S:
        registry.validate_strategy_refs(strategy_name, f"{self.title}.{method}")
        return self.compute(find_run(self._source, backtest, symbol, strategy_name), symbol, strategy_name)

    async def get_data(self, symbol: str, strategy_name: str, backtest: bool = True) -> S:
        """Statistics of the last run of (symbol, strategy_name); empty when it never ran."""
        return self._stats(symbol, strategy_name, backtest, "get_data")

    async def get_report(self, symbol: str, strategy_name: str, backtest: bool = True,
                         columns: Sequence[Column] | None = None) -> str:
        """The markdown report."""
        return await self.render(symbol, strategy_name, self._stats(symbol, strategy_name, backtest, "get_report"),
                                 columns)

    async def dump(self, symbol: str, strategy_name: str, backtest: bool = True, path: str | None = None,
                   columns: Sequence[Column] | None = None) -> str:
        """Write the report (default ./dump/<folder>/); returns the absolute path."""
        stats = self._stats(symbol, strategy_name, backtest, "dump")
        text = await self.render(symbol, strategy_name, stats, columns)
        name = state_key(symbol, strategy_name) if self.per_symbol else strategy_name
        return await dump_report(path, self.folder, name, text)
