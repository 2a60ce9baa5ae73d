"""Customer mail: when it goes (timing), what it says (render), how it is delivered (delivery, ledger).

The SMTP/maildir transport is an adapter: import it from `pipeline.io.smtp` where mail is
sent, so that importing the engine does not load smtplib.
"""
from pipeline.mail.ledger import Retrier, next_attempt
from pipeline.mail.render import defang, render_alert_mail, render_utm_mail, render_verdict_mail
from pipeline.mail.timing import MailScheduler, TenantMailSchedule

__all__ = [
    "MailScheduler", "Retrier", "TenantMailSchedule", "defang", "next_attempt",
    "render_alert_mail", "render_utm_mail", "render_verdict_mail",
]
