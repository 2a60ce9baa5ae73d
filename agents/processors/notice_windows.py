"""Every worker follows the compacted `service.notices` topic, whole and without a consumer group,
into `Registry.maintenance`: the maintenance windows during which (and one heartbeat timeout
after which) the UTM monitor judges no silence a stop. One book of the worker's follower
(agents.runtime.follow), on the event loop."""
from __future__ import annotations

from agents.context import Context
from agents.runtime.follow import CompactedFollower
from pipeline.models import Registry
from pipeline.notices.topic import NoticeBook
from pipeline.notices.windows import apply_notice


class NoticeWindows:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.book = NoticeBook()

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        notice = self.book.apply(key, value)
        notice_id = key.decode(errors="replace")
        if value is not None and notice is None:
            return  # refused (logged): the window it may have declared before stays
        apply_notice(self.registry.maintenance, notice_id, self.book.notices.get(notice_id))


def register_follower(ctx: Context) -> CompactedFollower:
    windows = NoticeWindows(ctx.registry)
    book = ctx.follower.topic(ctx.settings.topics.notices, name="notices", apply=windows.apply)
    book.start()
    return book
