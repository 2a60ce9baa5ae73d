"""Maintenance windows, as the UTM monitor needs them (pure).

During a declared maintenance window, and for one heartbeat timeout after it ends, a UTM's silence
is not judged as a stop: our own stop is not the customer's fault. A window silences every UTM,
whoever the notice was addressed to (the service's stop is everyone's). A cancelled notice
declares no window; an update moves it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Iterable, MutableMapping

from pipeline.models import Registry
from pipeline.notices.model import ServiceNotice

MAX_WINDOW = timedelta(hours=72)
"""A maintenance window silences UTMs' stops: at most this long (a longer stop is announced as
successive notices)."""


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    notice_id: str
    starts_at: datetime
    ends_at: datetime

    def silences(self, now: datetime, grace: timedelta) -> bool:
        return self.starts_at <= now < self.ends_at + grace


def window_of(notice: ServiceNotice) -> MaintenanceWindow | None:
    if not notice.is_maintenance or notice.cancelled or notice.starts_at is None or notice.ends_at is None:
        return None
    # at most 72 hours, whoever wrote the record (`notice publish` refuses a longer one)
    return MaintenanceWindow(notice.notice_id, notice.starts_at, min(notice.ends_at, notice.starts_at + MAX_WINDOW))


def apply_notice(windows: MutableMapping[str, MaintenanceWindow], notice_id: str, notice: ServiceNotice | None) -> None:
    """Follow one record of the notices topic (None: a removal) in a notice_id -> window map."""
    window = window_of(notice) if notice is not None else None
    if window is None:
        windows.pop(notice_id, None)
    else:
        windows[notice_id] = window


def silenced(now: datetime, windows: Iterable[MaintenanceWindow], grace: timedelta) -> bool:
    return any(w.silences(now, grace) for w in windows)


def registry_windows(registry: Registry) -> Callable[[], Iterable[MaintenanceWindow]]:
    """The windows the registry carries now (`Registry.maintenance`, kept by a follower or replay)."""
    return lambda: list(registry.maintenance.values())
