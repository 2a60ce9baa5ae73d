"""The checks a gateway runs on one upload, before anything is sent: the worker's first stage
(size, JSON, schema, time: `pipeline.ingest.wire_checked`, the same code), then that the record is
the authenticated UTM's (`wrong_utm`), then the registry (unregistered, inactive tenant or UTM).

What a refusal becomes follows the worker: a record the worker would have rejected is written to
`utm.events.rejected` (the contract's reasons, its original bytes); a heartbeat of an inactive
tenant or UTM, which the worker ignores, is only answered; a `wrong_utm` record is not the sender's
to put anywhere, so it is only answered.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from pipeline.ingest import EventValidator, Refusal, rejection, wire_checked
from pipeline.models import Registry

WRONG_UTM = "wrong_utm"
EVENTS = "events"
HEARTBEATS = "heartbeats"


@dataclass
class Checked:
    accepted: list[bytes] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    """`{"index", "reason", "detail"}` of each refused record, in the answer."""
    rejections: list[bytes] = field(default_factory=list)
    """Rejection records (JSON) for `utm.events.rejected`."""


def check_upload(records: list[bytes], utm_id: str, kind: str, registry: Registry, now: datetime,
                 topic: str) -> Checked:
    """`kind` is `events` or `heartbeats`; `topic` the one the records were meant for (it names them in a
    rejection record). The registry verdict is the same for every record of one UTM: asked once."""
    heartbeat = kind == HEARTBEATS
    out = Checked()
    registry_refusal: Refusal | None | bool = False
    for index, value in enumerate(records):
        outcome = wire_checked(value, now, heartbeat=heartbeat)
        if not isinstance(outcome, Refusal) and outcome["utm_id"] != utm_id:
            out.refused.append({"index": index, "reason": WRONG_UTM,
                                "detail": f"utm_id {outcome['utm_id']!r} is not the UTM of the token ({utm_id!r})"})
            continue
        if not isinstance(outcome, Refusal):
            if registry_refusal is False:
                registry_refusal = EventValidator(registry).registry_refusal(utm_id)
            if registry_refusal is None:
                out.accepted.append(value)
                continue
            outcome = registry_refusal  # type: ignore[assignment]
        assert isinstance(outcome, Refusal)
        out.refused.append({"index": index, "reason": outcome.reason, "detail": outcome.detail})
        if not (heartbeat and outcome.reason in ("inactive_tenant", "inactive_utm")):
            out.rejections.append(orjson.dumps(rejection(outcome, value, now, topic).to_record()))
    return out
