"""Ready-made exchange adapters for bk.add_exchange."""

from ._ccxt import CcxtExchange, add_ccxt_exchange, ccxt_adapter

__all__ = ["CcxtExchange", "add_ccxt_exchange", "ccxt_adapter"]
