"""Customer mail: when it goes (timing), what it says (render), what was delivered (ledger).

The SMTP/maildir transport is an adapter: import it from `pipeline.io.smtp` where mail is
sent, so that importing the engine does not load smtplib.
"""
from pipeline.mail.ledger import DeliveryLedger, Retrier, next_attempt
from pipeline.mail.render import defang, render_alert_mail, render_utm_mail, render_verdict_mail
from pipeline.mail.timing import MailScheduler, TenantMailSchedule

__all__ = [
    "DeliveryLedger", "MailScheduler", "Retrier", "TenantMailSchedule", "defang", "next_attempt",
    "render_alert_mail", "render_utm_mail", "render_verdict_mail",
]
