"""Every piece of module-level state, registered here by name; `bk.reset()` clears them all.

A store is anything with `clear()` and `__len__()` (dicts, lists and the library's own
registries), so a test can check that a reset left nothing behind.
"""

from __future__ import annotations

from typing import Protocol, TypeVar


class Store(Protocol):
    def clear(self) -> None: ...
    def __len__(self) -> int: ...


S = TypeVar("S", bound=Store)
_stores: dict[str, Store] = {}


def register(name: str, store: S) -> S:
    """Declare `store` as module state under `name`; returns it, for `_x = register("x", {})`."""
    _stores[name] = store
    return store


def reset_all() -> None:
    for store in _stores.values():
        store.clear()


def clear(*names: str) -> None:
    """Clear only the named stores (tests that simulate a new process keep the schemas)."""
    for name in names:
        _stores[name].clear()


def sizes() -> dict[str, int]:
    """Entries held by each store (all zero after `reset_all`)."""
    return {name: len(store) for name, store in _stores.items()}
