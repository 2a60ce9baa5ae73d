"""Logging of every mimamori command, set up in one place (MIMAMORI_LOG_FORMAT).

`text`: one line per record for people. `json`: one JSON object per line for log shippers, with
`time` (UTC, ISO 8601), `level`, `logger`, `message`, the record's `topic`, `partition` and
`offset` when the log call passes them (`log.warning(..., extra=record_position(...))`), and
`exception` with the traceback. Both pass every line through pipeline.redact (no password printed). The Kafka and Faust libraries log at WARNING and above only (but
Faust's worker still says when it is ready), and the errors the Kafka clients log while a consumer
group or topic is being set up, then retry by themselves ("Group Coordinator Request failed:
GroupCoordinatorNotAvailableError"), are not shown: they mean nothing to the reader.
"""
from __future__ import annotations

import logging
import logging.config
import re
import sys
from datetime import datetime, timezone
from typing import Any, TextIO

import orjson

from pipeline.redact import redact

FORMATS = ("text", "json")
LIBRARY_LOGGERS = ("aiokafka", "kafka", "faust", "mode", "urllib3", "asyncio")
LIFECYCLE_LOGGERS = ("faust.worker",)
"""Kept at the command's level: Faust's worker says when it starts, is ready and stops."""
_RETRIED = re.compile(
    r"GroupCoordinatorNotAvailable|NotCoordinatorForGroup|CoordinatorLoadInProgress"
    r"|not found in cluster metadata|Marking the coordinator dead")
"""What the Kafka clients log as errors while a group or topic is still being set up, and retry
by themselves: not shown ("Group Coordinator Request failed" in the demo meant nothing)."""
POSITION = ("topic", "partition", "offset")
"""Attributes a log call may pass through `extra` to say which input record it is about."""


def record_position(topic: str, partition: int, offset: int) -> dict[str, Any]:
    return {"topic": topic, "partition": partition, "offset": offset}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name in POSITION:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if getattr(record, "topic", None) is not None:
            line += f" [{record.topic}/{getattr(record, 'partition', '?')}@{getattr(record, 'offset', '?')}]"
        return redact(line)


class RetriedByTheClient(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(("aiokafka", "kafka")):
            return True
        return not _RETRIED.search(record.getMessage())


def logging_config(log_format: str = "text", level: str = "info", stream: TextIO | None = None) -> dict[str, Any]:
    """A logging.config.dictConfig of a command: handed to Faust's worker too, so its own logging
    setup yields the same lines."""
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r}: expected one of {FORMATS}")
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    quiet = max(logging.WARNING, logging.getLevelName(level.upper()))
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"mimamori": {"()": formatter}},
        "filters": {"retried": {"()": RetriedByTheClient}},
        "handlers": {"mimamori": {"class": "logging.StreamHandler", "formatter": "mimamori", "filters": ["retried"],
                                  "stream": stream if stream is not None else sys.stderr}},
        "root": {"level": level.upper(), "handlers": ["mimamori"]},
        "loggers": {**{name: {"level": logging.getLevelName(quiet)} for name in LIBRARY_LOGGERS},
                    **{name: {"level": level.upper()} for name in LIFECYCLE_LOGGERS}},
    }


def configure(log_format: str = "text", level: str = "info", stream: TextIO | None = None) -> None:
    logging.config.dictConfig(logging_config(log_format, level, stream))
