"""Customer mail: when it goes (timing), what it says (render), how it is delivered (transport, ledger)."""
from pipeline.mail.ledger import DeliveryLedger, Retrier, next_attempt
from pipeline.mail.render import defang, render_alert_mail, render_utm_mail, render_verdict_mail
from pipeline.mail.timing import MailScheduler, TenantMailSchedule
from pipeline.mail.transport import (
    MailError, MailTransport, PermanentMailError, TransientMailError, open_transport,
)

__all__ = [
    "DeliveryLedger", "MailError", "MailScheduler", "MailTransport", "PermanentMailError", "Retrier",
    "TenantMailSchedule", "TransientMailError", "defang", "next_attempt", "open_transport",
    "render_alert_mail", "render_utm_mail", "render_verdict_mail",
]
