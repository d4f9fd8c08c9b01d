"""Where reports find their data (the execution instances), where they are written, and the
get_data / get_report / dump surface shared by the per-(symbol, strategy) reports."""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Optional, Sequence

from .. import _registry as registry
from .backtest import write_report
from .table import Column

InstanceSource = Callable[[bool], Iterable[Any]]


def default_instances(backtest: bool) -> Iterable[Any]:
    """Backtest instances for backtest=True, Live instances otherwise."""
    from .._execution.backtest import Backtest
    from .._execution.live import Live
    return list((Backtest if backtest else Live)._registry._instances.values())


def find_instance(source: InstanceSource, backtest: bool, symbol: str, strategy_name: str) -> Any:
    """The instance of (symbol, strategy_name) in that mode, or None (never creates one)."""
    return next((i for i in source(backtest) if i.symbol == symbol and i.name == strategy_name), None)


def report_path(path: Optional[str], kind: str, name: str) -> str:
    """`path` as a directory (default ./dump/<kind>) holding <name>.md, or a .md file path."""
    if path is None:
        path = os.path.join(".", "dump", kind)
    return path if path.endswith(".md") else os.path.join(path, f"{name}.md")


class InstanceReport:
    """A report over the last run of one (symbol, strategy): subclasses say what to compute
    from the instance and how to render it."""

    title = ""          # "Schedule": names the calls in validation errors
    folder = ""         # default dump folder under ./dump
    per_symbol = False  # file named <symbol>_<strategy>.md instead of <strategy>.md

    def __init__(self, instances: InstanceSource = default_instances):
        self._instances = instances

    def compute(self, inst: Any, symbol: str, strategy_name: str) -> Any:
        raise NotImplementedError

    async def render(self, symbol: str, strategy_name: str, stats: Any,
                     columns: Optional[Sequence[Column]]) -> str:
        raise NotImplementedError

    def _stats(self, symbol: str, strategy_name: str, backtest: bool, method: str) -> Any:
        registry.validate_strategy_refs(strategy_name, f"{self.title}.{method}")
        return self.compute(find_instance(self._instances, backtest, symbol, strategy_name), symbol, strategy_name)

    async def get_data(self, symbol: str, strategy_name: str, backtest: bool = True) -> Any:
        """Statistics of the last run of (symbol, strategy_name); empty when it never ran."""
        return self._stats(symbol, strategy_name, backtest, "get_data")

    async def get_report(self, symbol: str, strategy_name: str, backtest: bool = True,
                         columns: Optional[Sequence[Column]] = None) -> str:
        """The markdown report."""
        return await self.render(symbol, strategy_name, self._stats(symbol, strategy_name, backtest, "get_report"),
                                 columns)

    async def dump(self, symbol: str, strategy_name: str, backtest: bool = True, path: Optional[str] = None,
                   columns: Optional[Sequence[Column]] = None) -> str:
        """Write the report (default ./dump/<folder>/); returns the absolute path."""
        stats = self._stats(symbol, strategy_name, backtest, "dump")
        text = await self.render(symbol, strategy_name, stats, columns)
        name = f"{symbol}_{strategy_name}" if self.per_symbol else strategy_name
        return await write_report(report_path(path, self.folder, name), text)
