"""Ready-made exchange adapters for bk.add_exchange."""

from ._ccxt import add_ccxt_exchange, ccxt_adapter

__all__ = ["add_ccxt_exchange", "ccxt_adapter"]
