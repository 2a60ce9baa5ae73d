"""The runtime's state messages: the JSON of each state write, held until its transaction ends."""
from __future__ import annotations

import tracemalloc

import orjson

from agents.runtime.processor import Output, PartitionedProcessor, StateWrite


class _NoHandler:
    async def assigned(self, partition, saved):  # pragma: no cover - never called
        pass

    async def revoked(self, partition):  # pragma: no cover
        pass

    async def handle(self, partition, records):  # pragma: no cover
        return Output()


def test_state_writes_become_messages_of_their_own_size() -> None:
    processor = PartitionedProcessor(name="t", group="g", bootstrap="localhost:1", inputs=["in"], handler=_NoHandler(),
                                     state_topic="state", log_topic="log")
    writes = [StateWrite(3, f"utm-{i}", {"last_seen": 1796277983.865 + i, "status": "online"}) for i in range(5_000)]
    writes += [StateWrite(3, None, {"pairs": 5000}), StateWrite(3, "gone", None)]
    tracemalloc.start()
    try:
        messages = processor._messages(3, Output([], writes))
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    texts = sum(len(value or b"") for _, _, value, _ in messages)
    print(f"\n5,002 state messages of {texts:,} bytes of JSON held {held:,} bytes")
    assert held < 4 * texts + 5_002 * 200  # orjson's own results kept >= 4 KiB each: over 20 MB here
    assert messages[0] == ("state", b"utm-0", orjson.dumps(writes[0].value), 3)
    assert messages[-2] == ("log", None, b'{"pairs":5000}', 3) and messages[-1] == ("state", b"gone", None, 3)
