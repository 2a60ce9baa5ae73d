"""The current version of every notice, from the records of the compacted `service.notices` topic (pure)."""
from __future__ import annotations

import logging

from pipeline.notices.check import NoticeError, notice_from_wire
from pipeline.notices.model import ServiceNotice

log = logging.getLogger("mimamori")


class NoticeBook:
    """notice_id -> its current version, applying records in topic order (a null value removes)."""

    def __init__(self) -> None:
        self.notices: dict[str, ServiceNotice] = {}
        self.refused = 0

    def apply(self, key: bytes | None, value: bytes | None) -> ServiceNotice | None:
        """The notice the record carries (None for a removal or a refused record)."""
        if key is None:
            log.warning("notice record without key ignored")
            return None
        notice_id = key.decode(errors="replace")
        if value is None:
            self.notices.pop(notice_id, None)
            return None
        try:
            notice = notice_from_wire(value)
        except NoticeError as exc:
            self.refused += 1
            log.error("notice record %r refused: %s", notice_id, exc)
            return None
        current = self.notices.get(notice_id)
        if current is None or notice.version >= current.version:
            self.notices[notice_id] = notice
        return notice
