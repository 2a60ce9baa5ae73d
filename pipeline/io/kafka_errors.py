"""Which producer errors can never succeed on a retry (adapter over aiokafka's error types).

The failure policy: a transient error (broker unreachable, leader moving, a timeout, missing
rights an operator can grant) is retried with backoff; a permanent one (this message can never be
written: too large for the topic or the client, a record the broker calls invalid) is dead-lettered
with its reason and the partition goes on. Retrying a permanent error for ever stalls the partition.
"""
from __future__ import annotations

from aiokafka import errors

PERMANENT_SEND_ERRORS: tuple[type[BaseException], ...] = (
    errors.MessageSizeTooLargeError,  # MESSAGE_TOO_LARGE (10), and the client's own max_request_size check
    errors.RecordListTooLargeError,  # RECORD_LIST_TOO_LARGE (18)
    errors.RecordTooLargeError,  # the client's batch builder
    errors.CorruptRecordException,  # CORRUPT_MESSAGE (2); InvalidMessageError is the same code
    errors.InvalidMessageError,
    errors.InvalidTimestampError,  # INVALID_TIMESTAMP (32): outside the topic's allowed difference
    errors.UnsupportedForMessageFormatError,  # UNSUPPORTED_FOR_MESSAGE_FORMAT (43)
    errors.InvalidTopicError,  # INVALID_TOPIC_EXCEPTION (17): a name Kafka refuses
)
"""aiokafka maps INVALID_RECORD (87, e.g. a null key on a compacted topic) to UnknownError, which
cannot be told from a passing broker fault: it stays transient, and the worker's writers never
send a null key to a compacted topic."""


def is_permanent_send_error(exc: BaseException) -> bool:
    """True when sending the same message again can never succeed: dead-letter it and go on.
    False for everything else, to be retried with backoff. Fencing errors (ProducerFenced, an
    invalid producer epoch) are neither: the caller must stop writing for that partition."""
    return isinstance(exc, PERMANENT_SEND_ERRORS)
