"""Progress hooks: the CLI's progress bar and the flow's Prefect progress artifact listen to the same events."""

from __future__ import annotations

from collections.abc import Callable

Listener = Callable[[str, int, int], None]  # (stage, done, total)
_listeners: list[Listener] = []


def add_listener(fn: Listener) -> None:
    _listeners.append(fn)


def remove_listener(fn: Listener) -> None:
    if fn in _listeners:
        _listeners.remove(fn)


def report(stage: str, done: int, total: int) -> None:
    for fn in list(_listeners):
        fn(stage, done, total)
