"""The library logger, and error reports that cannot be missed and do not flood.

The logger is the standard `logging` logger "backtest_kit" unless set_logger replaces it. It
has no handler of its own (no NullHandler): with no logging configured at all, WARNING and
above reach stderr through `logging.lastResort`, as for any unconfigured logger; once the
application configures logging (basicConfig, dictConfig, a handler on "backtest_kit" or the
root), its configuration alone decides. Silence it with
`logging.getLogger("backtest_kit").setLevel(logging.ERROR)` or a handler of your own.

Errors are counted by kind (where they happened, exception type): the first of each kind is
logged at WARNING, repeats at DEBUG, with one WARNING more at the 10th, 100th, 1000th, ...
"""

from __future__ import annotations

import logging
from typing import Any

from . import _state
from .errors import ValidationError

DEFAULT = logging.getLogger("backtest_kit")
log: Any = DEFAULT


class _Custom:
    """The set_logger override as module state: empty while the default logger is in use."""

    def clear(self) -> None:
        global log
        log = DEFAULT

    def __len__(self) -> int:
        return 0 if log is DEFAULT else 1


_state.register("logger", _Custom())


def set_logger(logger: Any) -> None:
    """Route library log messages to `logger` (anything with debug/info/warning/error methods)."""
    global log
    for name in ("debug", "info", "warning", "error"):
        if not callable(getattr(logger, name, None)):
            raise ValidationError(f"set_logger: logger must have a callable {name}() method")
    log = logger


def _milestone(n: int) -> bool:
    """10, 100, 1000, ...: repeats worth one more warning."""
    while n >= 10 and n % 10 == 0:
        n //= 10
    return n == 1


class ErrorLog:
    """Error counts by kind: one per run (the sink's), one for errors outside runs (listeners)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}

    def report(self, where: str, error: BaseException) -> int:
        """Log `error` as its count asks; returns how many of its kind there have been."""
        kind = (where, type(error).__name__)
        n = self.counts[kind] = self.counts.get(kind, 0) + 1
        at = f"[{where}] " if where else ""
        name = type(error).__name__
        if n == 1:
            log.warning("backtest_kit: %s%s: %s (repeats of this error are counted, not logged)", at, name, error)
        elif _milestone(n):
            log.warning("backtest_kit: %s%s has happened %d times; the latest: %s", at, name, n, error)
        else:
            log.debug("backtest_kit: %s%s (#%d): %s", at, name, n, error)
        return n

    def clear(self) -> None:
        self.counts.clear()

    def __len__(self) -> int:
        return len(self.counts)


# Errors met outside any run's sink (listeners, walker callbacks): counted per process.
outside_runs = _state.register("error_counts", ErrorLog())
