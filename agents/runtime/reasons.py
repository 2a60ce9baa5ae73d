"""The reason codes `/health` gives for what is failing: codes, never exception text, which can
carry a URL or a customer's address; the details go to the log (redacted)."""

STORE_UNAVAILABLE = "store_unavailable"
KAFKA_SEND_FAILED = "kafka_send_failed"
KAFKA_UNAVAILABLE = "kafka_unavailable"
KAFKA_WRITE = "kafka_write"
"""A processor's transactional writes fail."""
HANDLER_SLOW = "handler_slow"
"""A processor's step outlasted half of max.poll.interval.ms and was cut."""
SMTP_UNAVAILABLE = "smtp_unavailable"
TIMER_ERROR = "timer_error"
