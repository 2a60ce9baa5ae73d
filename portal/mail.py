"""The mail that brings an account's temporary credentials (kind `portal-account`), rendered like the
other mails (pipeline.mail.render's envelope) and sent through the outbox."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from pipeline.mail.render import compose, local_time, message_id_for
from pipeline.mail.text import one_line
from pipeline.models import Mail, Tenant
from pipeline.resources import TEMPLATES
from portal.accounts import Account

KIND = "portal-account"


def account_mail(account: Account, password: str, tenant: Tenant, portal_url: str, now: datetime, tz: ZoneInfo,
                 *, reset: bool = False, sender: str = "mimamori@localhost") -> Mail:
    """To the account's own address only. The Message-ID follows the account's version, so the same
    issue sent twice is recognisably the same mail, and a reset is a new one."""
    env = Environment(loader=FileSystemLoader(str(TEMPLATES / "portal")), autoescape=False, undefined=StrictUndefined,
                      keep_trailing_newline=True)
    text = env.get_template("account-mail.txt.j2").render(
        tenant_name=one_line(tenant.name, 120), portal_url=portal_url, login=account.login, password=password,
        until=local_time(tz)(account.temporary_until), reset=reset)
    subject = "[mimamori] セキュリティサービスポータル アカウント" + ("再発行" if reset else "発行") + "のお知らせ"
    return compose(kind=KIND, tenant=tenant, subject=subject, text=text, html=None, now=now, tz=tz, sender=sender,
                   message_id=message_id_for(KIND, tenant.tenant_id, [account.account_id, str(account.version)]),
                   headers={}, grade=None, alert_ids=(), utm_id=None, recipients=(account.email,))
