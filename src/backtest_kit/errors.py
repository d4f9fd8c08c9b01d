"""Library exceptions: every error raised by backtest_kit derives from BacktestKitError."""


class BacktestKitError(Exception):
    """Base class of all backtest_kit errors."""


class ValidationError(BacktestKitError, ValueError):
    """A schema, a signal or a referenced name is invalid."""


class ConfigError(BacktestKitError, ValueError):
    """A set_config override is unknown or invalid."""


class ContextError(BacktestKitError, RuntimeError):
    """A context helper was called outside strategy or exchange code."""


class CandleError(BacktestKitError):
    """An exchange returned candles that fail validation, or could not be fetched."""


class PersistError(BacktestKitError):
    """Live state cannot be read, validated or written; it is never silently discarded."""
