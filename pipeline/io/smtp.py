"""Deliver a rendered mail: SMTP (plain, STARTTLS or TLS, with login) or a maildir directory.

`deliver(mail, recipients)` answers per recipient (accepted, deferred 4xx, refused 5xx: what the
relay said to each RCPT TO); it raises TransientMailError when the attempt failed as a whole for a
reason that may pass (the relay unreachable, a 4xx to MAIL FROM or DATA) and PermanentMailError when
the relay refused the mail itself for good (a 5xx to MAIL FROM or DATA).
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import smtplib
import ssl
from email.utils import parseaddr
from functools import lru_cache
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Protocol
from urllib.parse import unquote, urlsplit

from pipeline.config import SMTP_CLEAR_TEXT_LOGIN, smtp_clear_text_login, url_flag
from pipeline.mail.delivery import ACCEPTED, DEFERRED, REFUSED, Answer
from pipeline.models import Mail
from pipeline.redact import redact_url


class MailError(Exception):
    pass


class TransientMailError(MailError):
    """Try again later: the server is unreachable or answered 4xx."""


class RelayUnreachable(TransientMailError):
    """The relay itself could not be used (connection, TLS, login, dropped session): no mail can go
    now, whoever it is for."""


class PermanentMailError(MailError):
    """The server refused the mail for good (5xx on every recipient); retrying will not help."""


class MailTransport(Protocol):
    def deliver(self, mail: Mail, recipients: list[str] | None = None) -> dict[str, Answer]: ...

    def send(self, mail: Mail) -> None: ...

    def close(self) -> None: ...


def envelope_sender(mail: Mail) -> str:
    for line in mail.raw.splitlines():
        if not line:
            break
        if line.lower().startswith("from:"):
            return parseaddr(line[5:].strip())[1]
    return ""


@lru_cache(maxsize=1)
def default_ssl_context() -> ssl.SSLContext:
    """The system's trust, made once: reading the CA bundle took ~15 ms of CPU for every transport
    the relay pool opened (a plain smtp:// relay made one it never used)."""
    return ssl.create_default_context()


class SmtpTransport:
    """One connection, opened on first use and reopened after a failure."""

    def __init__(
        self, host: str, port: int, *, tls: bool = False, starttls: bool = False, user: str | None = None,
        password: str | None = None, timeout: float = 30.0, ssl_context: ssl.SSLContext | None = None,
        insecure: bool = False,
    ) -> None:
        if user and not (tls or starttls or insecure):
            raise ValueError(f"smtp://{user}:***@{host}:{port}: {SMTP_CLEAR_TEXT_LOGIN}")
        self.host, self.port, self.tls, self.starttls = host, port, tls, starttls
        self.user, self.password, self.timeout = user, password, timeout
        self.ssl_context = ssl_context or (default_ssl_context() if tls or starttls else None)
        self._client: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        client: smtplib.SMTP
        if self.tls:
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self.ssl_context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            client.ehlo()
            if self.starttls:
                client.starttls(context=self.ssl_context)
                client.ehlo()
            if self.user:
                client.login(self.user, self.password or "")
        except BaseException:
            _quietly_close(client)
            raise
        return client

    def deliver(self, mail: Mail, recipients: list[str] | None = None) -> dict[str, Answer]:
        """One SMTP transaction to `recipients` (default: all of the mail's), on the open connection
        when it still answers. Never re-sends on its own after DATA may have started."""
        rcpts = list(dict.fromkeys(mail.to if recipients is None else recipients))
        try:
            client = self._ready_client()
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise RelayUnreachable(f"{type(exc).__name__}: {exc}") from exc
        try:
            refused = client.sendmail(envelope_sender(mail), rcpts, mail.raw.encode("utf-8"))
        except smtplib.SMTPRecipientsRefused as exc:  # every recipient refused; the session was reset
            return {r: Answer.of_code(*_code_text(exc.recipients.get(r))) for r in rcpts}
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:  # the session was reset
            raise _classify(exc) from exc
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.close()
            raise RelayUnreachable(f"{type(exc).__name__}: {exc}") from exc
        except smtplib.SMTPException as exc:
            self.close()
            raise _classify(exc) from exc
        return {r: Answer.of_code(*_code_text(refused[r])) if r in refused else Answer(ACCEPTED, "250")
                for r in rcpts}

    def send(self, mail: Mail) -> None:
        """All recipients at once; raises only when none accepted the mail."""
        _raise_unless_one_accepted(self.deliver(mail))

    def _ready_client(self) -> smtplib.SMTP:
        if self._client is not None:
            try:
                self._client.noop()
                return self._client
            except (smtplib.SMTPException, OSError):
                self.close()
        self._client = self._connect()
        return self._client

    def close(self) -> None:
        if self._client is not None:
            _quietly_close(self._client)
            self._client = None


def _quietly_close(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def _code_text(answer: tuple[int, bytes | str] | None) -> tuple[int, str]:
    if answer is None:
        return 451, "no answer for this recipient"
    code, text = answer
    return code, text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def _raise_unless_one_accepted(answers: dict[str, Answer]) -> None:
    if any(a.outcome == ACCEPTED for a in answers.values()):
        return
    detail = "; ".join(f"{r}: {a.detail}" for r, a in answers.items())
    permanent = bool(answers) and all(a.outcome == "refused" for a in answers.values())
    raise (PermanentMailError if permanent else TransientMailError)(f"recipients refused: {detail}")


def _classify(exc: BaseException) -> MailError:
    if isinstance(exc, MailError):
        return exc
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        permanent = bool(codes) and all(500 <= code < 600 for code in codes)
        return (PermanentMailError if permanent else TransientMailError)(f"recipients refused: {exc.recipients}")
    if isinstance(exc, smtplib.SMTPResponseException) and 500 <= exc.smtp_code < 600:
        return PermanentMailError(f"{exc.smtp_code} {exc.smtp_error!r}")
    return TransientMailError(f"{type(exc).__name__}: {exc}")


class MaildirTransport:
    """Writes each mail once into PATH/new (via PATH/tmp); its file name comes from the Message-ID."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @staticmethod
    def file_name(mail: Mail) -> str:
        return "mimamori." + hashlib.blake2b(mail.message_id.encode(), digest_size=16).hexdigest()

    def holds(self, name: str) -> bool:
        return (self.path / "new" / name).exists() or any((self.path / "cur").glob(name + ":*"))

    def deliver(self, mail: Mail, recipients: list[str] | None = None) -> dict[str, Answer]:
        """A maildir holds one copy of a mail for all its readers: every recipient is accepted."""
        self.send(mail)
        return {r: Answer(ACCEPTED, "maildir") for r in dict.fromkeys(mail.to if recipients is None else recipients)}

    def send(self, mail: Mail) -> None:
        try:
            for folder in ("tmp", "new", "cur"):
                (self.path / folder).mkdir(parents=True, exist_ok=True)
            name = self.file_name(mail)
            if self.holds(name):
                return
            staged = self.path / "tmp" / f"{name}.{os.getpid()}"
            with open(staged, "wb") as handle:
                handle.write(mail.raw.replace("\r\n", "\n").encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(staged, self.path / "new" / name)
            except FileExistsError:
                pass
            finally:
                staged.unlink(missing_ok=True)
        except OSError as exc:
            raise TransientMailError(f"maildir {self.path}: {exc}") from exc

    def close(self) -> None:
        pass


def open_transport(url: str, timeout: float = 30.0, ssl_context: ssl.SSLContext | None = None) -> MailTransport:
    """`smtp://[USER:PASS@]HOST:PORT[?starttls=1|?insecure=1]`, `smtps://...`, `maildir:///PATH` or
    `maildir://./PATH`. A login without TLS is refused unless the URL says `insecure=1`; with
    `starttls=1` a server that offers no STARTTLS is refused before any password is sent."""
    if url.startswith("maildir://"):
        path = url[len("maildir://"):]
        if not path:
            raise ValueError(f"maildir URL without a path: {url!r}")
        return MaildirTransport(Path(path))
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(f"expected smtp://HOST:PORT, smtps://HOST:PORT or maildir:///PATH, got {redact_url(url)!r}")
    if smtp_clear_text_login(url):
        raise ValueError(f"{redact_url(url)}: {SMTP_CLEAR_TEXT_LOGIN}")
    starttls = url_flag(url, "starttls")
    tls = parts.scheme == "smtps"
    return SmtpTransport(
        parts.hostname, parts.port or (465 if tls else 25), tls=tls, starttls=starttls and not tls,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None, timeout=timeout,
        ssl_context=ssl_context, insecure=url_flag(url, "insecure"),
    )


# --- connections to the relay, shared by concurrent deliveries ---------------------------------
# At most `size` SMTP transactions run at once, each on a connection of its own that is kept open
# for the next (reused while the relay answers NOOP). Recipients are grouped by their domain, one
# transaction per domain, and one domain holds at most `per_domain` of the connections: a relay
# that is slow for one customer's domain (it checks the recipient with that domain's servers, or
# they defer slowly) leaves the other connections to everyone else.

DEFAULT_SIZE = 4
DEFAULT_PER_DOMAIN = 2


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def by_domain(recipients: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for address in dict.fromkeys(recipients):
        groups.setdefault(domain_of(address), []).append(address)
    return groups


class RelayPool:
    def __init__(self, factory: Callable[[], MailTransport], size: int = DEFAULT_SIZE,
                 per_domain: int = DEFAULT_PER_DOMAIN) -> None:
        if size < 1 or per_domain < 1:
            raise ValueError("a relay pool needs at least one connection and one per domain")
        self.factory = factory
        self.size, self.per_domain = size, min(per_domain, size)
        self.executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="smtp")
        self._idle: list[MailTransport] = []
        self._slots: asyncio.Semaphore | None = None
        self._domains: dict[str, asyncio.Semaphore] = {}
        self.opened = 0
        """Transports created so far (a reused connection is not counted again)."""
        self.busy: dict[str, int] = {}
        """Transactions running now, by domain."""
        self.unreachable: str | None = None
        """Why the relay could not be used in the last transaction that ended (None: it could)."""

    async def deliver(self, mail: Mail, recipients: list[str]) -> dict[str, Answer]:
        """Hand `mail` to the relay for `recipients`; every one gets an answer. A whole transaction
        failing answers each of its recipients alike (deferred, or refused for a permanent error)."""
        groups = by_domain(recipients)
        results = await asyncio.gather(*(self._deliver_group(mail, domain, group) for domain, group in groups.items()))
        answers: dict[str, Answer] = {}
        for part in results:
            answers.update(part)
        return answers

    async def _deliver_group(self, mail: Mail, domain: str, recipients: list[str]) -> dict[str, Answer]:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.size)
        gate = self._domains.setdefault(domain, asyncio.Semaphore(self.per_domain))
        async with gate, self._slots:
            self.busy[domain] = self.busy.get(domain, 0) + 1
            transport = self._idle.pop() if self._idle else self._open()
            try:
                loop = asyncio.get_running_loop()
                answers = await loop.run_in_executor(self.executor, transport.deliver, mail, recipients)
                self.unreachable = None
                return answers
            except RelayUnreachable as exc:
                self.unreachable = type(exc.__cause__ or exc).__name__
                return {r: Answer(DEFERRED, str(exc)) for r in recipients}
            except TransientMailError as exc:
                self.unreachable = None
                return {r: Answer(DEFERRED, str(exc)) for r in recipients}
            except PermanentMailError as exc:
                self.unreachable = None
                return {r: Answer(REFUSED, str(exc)) for r in recipients}
            finally:
                self._idle.append(transport)
                self.busy[domain] -= 1
                if not self.busy[domain]:
                    del self.busy[domain]

    def _open(self) -> MailTransport:
        self.opened += 1
        return self.factory()

    def close(self) -> None:
        """Close the idle connections (call when no delivery runs)."""
        while self._idle:
            self._idle.pop().close()
        self.executor.shutdown(wait=False, cancel_futures=True)
