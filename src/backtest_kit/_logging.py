"""The library logger: the standard logging logger "backtest_kit" unless set_logger replaces it."""

from __future__ import annotations

import logging
from typing import Any

from . import _state
from .errors import ValidationError

DEFAULT = logging.getLogger("backtest_kit")
DEFAULT.addHandler(logging.NullHandler())  # a library stays quiet unless the application configures logging
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
