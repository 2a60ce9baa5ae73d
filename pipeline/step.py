"""What one step of the logic hands its driver: what to publish, what to store, which state changed.

The worker and `mimamori replay` drive the same façades (`pipeline.engine`); both publish by the one
rule here, so the alert versions on `alerts`, in the store and offered to mail timing are the same.
State is a flat map of keys to JSON values (None: removed); a key starts with the `utm_id` or
`tenant_id` it belongs to (`state_key`), and a driver keeps a step's keys beside the input partition
the step came from.
"""
from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.correlate import AlertChange
from pipeline.models import Mail

SEPARATOR = "\x1f"


def state_key(route: str, *parts: str) -> str:
    return SEPARATOR.join((route, *parts))


def coalesced(changes: list[AlertChange]) -> list[AlertChange]:
    """The publishing rule: every significant change (a grade or status moved, a verdict), and the
    last version of each alert in the step when that one only moved counts or times."""
    last = {change.alert.alert_id: change for change in changes}
    return [c for c in changes if c.significant or last[c.alert.alert_id] is c]


@dataclass
class StateChanges:
    """Keyed state that changed in a step (None: removed), and newly remembered event pairs
    (`seen`: `(utm_id, hash of the event id, arrival epoch seconds)`, pipeline.dedup), which only
    ever grow until they expire. The first item of a pair is its routing key."""

    keyed: dict[str, Any] = field(default_factory=dict)
    seen: list[tuple[Any, ...]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.keyed or self.seen)


@dataclass
class MailStep:
    mails: list[Mail] = field(default_factory=list)
    state: StateChanges = field(default_factory=StateChanges)


class RecordingDict(MutableMapping[str, Any]):
    """A dict that remembers which keys changed since it was last drained."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.changed: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        """The dict's own: Mapping.get raises and catches KeyError on every miss, which is every
        new event the Deduper looks up (2.6% of the worker's samples in the benchmark's profile)."""
        return self.data.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.changed.add(key)

    def __delitem__(self, key: str) -> None:
        del self.data[key]
        self.changed.add(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __bool__(self) -> bool:
        return True

    def load(self, key: str, value: Any) -> None:
        self.data[key] = value

    def drain(self) -> dict[str, Any]:
        out = {key: self.data.get(key) for key in self.changed}
        self.changed.clear()
        return out
