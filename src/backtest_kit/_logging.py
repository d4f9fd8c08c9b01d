"""The library logger: the standard logging logger "backtest_kit" unless set_logger replaces it."""

from __future__ import annotations

import logging

from .errors import ValidationError

log = logging.getLogger("backtest_kit")
log.addHandler(logging.NullHandler())  # a library stays quiet unless the application configures logging


def set_logger(logger) -> None:
    """Route library log messages to `logger` (anything with debug/info/warning/error methods)."""
    global log
    for name in ("debug", "info", "warning", "error"):
        if not callable(getattr(logger, name, None)):
            raise ValidationError(f"set_logger: logger must have a callable {name}() method")
    log = logger
